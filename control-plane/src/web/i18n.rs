//! The dashboard's message catalog: every string a person reads, in English
//! and Arabic, as one enum so that a missing translation does not compile.
//! The language comes from the `lang` cookie (the switch) or else from the
//! browser's `Accept-Language`.

/// A language the dashboard speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// English, left to right.
    En,
    /// Arabic, right to left.
    Ar,
}

impl Lang {
    /// The `lang` attribute and cookie value.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ar => "ar",
        }
    }

    /// The `dir` attribute.
    pub fn dir(self) -> &'static str {
        match self {
            Lang::En => "ltr",
            Lang::Ar => "rtl",
        }
    }

    /// The language a code names, if one the dashboard speaks.
    pub fn from_code(code: &str) -> Option<Lang> {
        match code.trim().get(..2)?.to_ascii_lowercase().as_str() {
            "en" => Some(Lang::En),
            "ar" => Some(Lang::Ar),
            _ => None,
        }
    }

    /// The first language of an `Accept-Language` header the dashboard
    /// speaks (in the order given; weights are in that order in practice).
    pub fn from_accept(header: &str) -> Option<Lang> {
        header
            .split(',')
            .take(16)
            .filter_map(|part| Lang::from_code(part.split(';').next().unwrap_or_default()))
            .next()
    }
}

macro_rules! catalog {
    ($($key:ident => $en:literal, $ar:literal;)*) => {
        /// A message of the catalog.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Msg { $($key,)* }

        impl Msg {
            /// Every message, for the catalog's own checks.
            #[cfg(test)]
            pub const ALL: &'static [Msg] = &[$(Msg::$key,)*];

            /// The text in `lang`.
            pub fn text(self, lang: Lang) -> &'static str {
                match (self, lang) {
                    $((Msg::$key, Lang::En) => $en, (Msg::$key, Lang::Ar) => $ar,)*
                }
            }
        }
    };
}

catalog! {
    Brand => "Slipway", "سليب‌وي";
    SkipToContent => "Skip to content", "انتقل إلى المحتوى";
    Overview => "Overview", "نظرة عامة";
    History => "History", "السجل";
    Rollbacks => "Rollbacks", "التراجعات";
    Hosts => "Hosts", "الخوادم";
    Audit => "Audit", "التدقيق";
    Deploy => "Deploy", "نشر";
    Rollback => "Roll back", "تراجع";
    Logout => "Log out", "تسجيل الخروج";
    SignedInAs => "Signed in as", "مسجّل الدخول باسم";
    Language => "Language", "اللغة";
    English => "English", "الإنجليزية";
    Arabic => "Arabic", "العربية";
    Navigation => "Main navigation", "التنقل الرئيسي";
    Environment => "Environment", "البيئة";
    App => "App", "التطبيق";
    Release => "Release", "الإصدار";
    Status => "Status", "الحالة";
    Kind => "Kind", "النوع";
    Author => "Author", "المنفّذ";
    Started => "Started", "البدء";
    Finished => "Finished", "الانتهاء";
    Duration => "Duration", "المدة";
    Progress => "Progress", "التقدم";
    Stage => "Stage", "المرحلة";
    Host => "Host", "الخادم";
    Bytes => "Bytes sent", "البايتات المرسلة";
    Batch => "Batch", "الدفعة";
    Error => "Error", "الخطأ";
    Message => "Message", "الرسالة";
    Commit => "Commit", "الإيداع";
    GitRef => "Ref", "المرجع";
    Current => "Current release", "الإصدار الحالي";
    DeployedBy => "Deployed by", "نشره";
    When => "When", "متى";
    Health => "Hosts healthy / degraded / down", "الخوادم سليمة / متراجعة / متوقفة";
    LastOutcome => "Last outcome", "آخر نتيجة";
    Running => "Running deployments", "عمليات النشر الجارية";
    NothingRunning => "Nothing is deploying right now.", "لا يجري أي نشر الآن.";
    NoApps => "No app is deployed to this environment yet.", "لم يُنشر أي تطبيق في هذه البيئة بعد.";
    NoEnvironments => "No environment yet: create one with {cmd}.", "لا توجد بيئات بعد: أنشئ واحدة بالأمر {cmd}.";
    None => "none", "لا يوجد";
    Deployment => "Deployment", "عملية النشر";
    Events => "Events", "الأحداث";
    Cancel => "Cancel deployment", "إلغاء النشر";
    CancelReason => "Reason", "السبب";
    Filter => "Filter", "تصفية";
    Text => "Search commit, ref, release, message", "ابحث في الإيداع والمرجع والإصدار والرسالة";
    Since => "From", "من";
    Until => "To", "إلى";
    Any => "any", "الكل";
    Next => "Next page", "الصفحة التالية";
    ExportCsv => "Export CSV", "تصدير CSV";
    ExportJson => "Export JSON", "تصدير JSON";
    NoDeployments => "No deployment matches.", "لا توجد عملية نشر مطابقة.";
    Reason => "Reason", "السبب";
    FromTo => "From → to", "من ← إلى";
    Automatic => "Automatic", "تلقائي";
    Manual => "Manual", "يدوي";
    TimeToRecovery => "Time to recovery", "زمن التعافي";
    NoRollbacks => "No rollback yet.", "لا توجد تراجعات بعد.";
    Files => "Files", "الملفات";
    Changes => "File changes", "تغييرات الملفات";
    Path => "Path", "المسار";
    Lines => "Lines +/−", "الأسطر +/−";
    Added => "added", "مضاف";
    Modified => "modified", "معدّل";
    Deleted => "deleted", "محذوف";
    Marks => "Mark", "العلامة";
    MarkGood => "good", "جيد";
    MarkBad => "bad", "سيئ";
    Pin => "Pin on an environment's hosts", "تثبيت على خوادم بيئة";
    Source => "Source", "المصدر";
    Branch => "Branch tip", "رأس الفرع";
    Behind => "Commits not deployed", "إيداعات لم تُنشر";
    Repository => "Repository", "المستودع";
    LastFetch => "Last fetch", "آخر جلب";
    AgentVersion => "Agent version", "إصدار الوكيل";
    CertExpiry => "Certificate expires", "انتهاء الشهادة";
    Address => "Address", "العنوان";
    HealthChart => "Health", "الصحة";
    Load => "Load", "الحمل";
    Memory => "Memory available", "الذاكرة المتاحة";
    Disk => "Disk free", "المساحة الحرة على القرص";
    Availability => "Availability", "التوفر";
    ResponseTime => "Response time", "زمن الاستجابة";
    NoSamples => "No samples in this period.", "لا توجد عينات في هذه الفترة.";
    Actor => "Actor", "الفاعل";
    Method => "Method", "الطريقة";
    Target => "Target", "الهدف";
    Outcome => "Outcome", "النتيجة";
    Time => "Time", "الوقت";
    Preview => "Preview the plan", "معاينة الخطة";
    Plan => "Plan", "الخطة";
    Confirm => "Confirm", "تأكيد";
    ConfirmDeploy => "Deploy release {release} of {app} to {env} on {hosts} hosts?", "نشر الإصدار {release} من {app} إلى {env} على {hosts} خوادم؟";
    ConfirmRollback => "Roll {app} in {env} back to release {release} on {hosts} hosts?", "إرجاع {app} في {env} إلى الإصدار {release} على {hosts} خوادم؟";
    HostsMissing => "Objects missing", "الكائنات الناقصة";
    FilesChanged => "Files changed", "الملفات المتغيّرة";
    Reachable => "Reachable", "متاح";
    Yes => "yes", "نعم";
    No => "no", "لا";
    LoginTitle => "Sign in", "تسجيل الدخول";
    LoginHelp => "Run {cmd} and open the link it prints.", "شغّل الأمر {cmd} وافتح الرابط الذي يطبعه.";
    LoginRefused => "This login link is not valid: it was used already, or it expired.", "رابط الدخول هذا غير صالح: استُخدم من قبل أو انتهت صلاحيته.";
    LinkTampered => "This login link was altered or was not issued by this control plane. Run {cmd} again.", "رابط الدخول هذا مُعدَّل أو لم تُصدره لوحة التحكم هذه. شغّل الأمر {cmd} من جديد.";
    LinkExpired => "This login link expired: a link works for 60 seconds. Run {cmd} again.", "انتهت صلاحية رابط الدخول هذا: يعمل الرابط 60 ثانية. شغّل الأمر {cmd} من جديد.";
    LinkUsed => "This login link was used already: each link opens one session. Run {cmd} again.", "استُخدم رابط الدخول هذا من قبل: كل رابط يفتح جلسة واحدة. شغّل الأمر {cmd} من جديد.";
    CertificateLogin => "Log in with my certificate", "الدخول بشهادتي";
    CertificateLoginHelp => "Or, if this browser holds your operator certificate, log in with it.", "أو، إن كان هذا المتصفح يحمل شهادة المشغّل الخاصة بك، ادخل بها.";
    NoCertificate => "This browser presented no certificate. Import your operator certificate (slipctl pki writes it) into the browser, or run {cmd} and open the link it prints.", "لم يقدّم هذا المتصفح أي شهادة. استورد شهادة المشغّل (يكتبها الأمر slipctl pki) إلى المتصفح، أو شغّل الأمر {cmd} وافتح الرابط الذي يطبعه.";
    NotOperator => "The certificate this browser presented is not an operator's: {who}.", "الشهادة التي قدّمها هذا المتصفح ليست لمشغّل: {who}.";
    HookOutput => "Hook output", "مخرجات الخطافات";
    NoHookOutput => "No hook output yet.", "لا توجد مخرجات خطافات بعد.";
    HintHook => "A hook failed: its output is in this host's hook section. Fix the command (or its timeout) in the app's hooks, then deploy again.", "فشل خطاف: مخرجاته في قسم خطافات هذا الخادم. أصلح الأمر (أو مهلته) في خطافات التطبيق ثم انشر من جديد.";
    HintHealth => "The health check failed and current was switched back: check the app's health check and its logs on this host.", "فشل فحص الصحة وأُعيد الإصدار الحالي: راجع فحص صحة التطبيق وسجلاته على هذا الخادم.";
    HintTransfer => "Sending or building the release failed: check the host's free disk and that its agent is reachable (slipctl host list).", "فشل إرسال الإصدار أو بناؤه: تحقق من المساحة الحرة على الخادم ومن إمكانية الوصول إلى وكيله (slipctl host list).";
    HintShared => "Linking the shared paths failed: check the app's shared paths on this host.", "فشل ربط المسارات المشتركة: راجع المسارات المشتركة للتطبيق على هذا الخادم.";
    HintActivate => "Switching current failed: check the deploy root's permissions and free disk on this host.", "فشل تبديل الإصدار الحالي: راجع صلاحيات مجلد النشر والمساحة الحرة على هذا الخادم.";
    HintOther => "See this host's lines in the event log; deploy again once the cause is fixed.", "راجع أسطر هذا الخادم في سجل الأحداث، وانشر من جديد بعد إصلاح السبب.";
    SignedIn => "Signed in. Continue to the overview.", "تم تسجيل الدخول. تابع إلى النظرة العامة.";
    Forbidden => "You may not do this.", "لا يحق لك القيام بهذا.";
    CsrfRefused => "The form was refused: its security token is missing or wrong. Reload the page and try again.", "رُفض النموذج: رمز الأمان مفقود أو خاطئ. أعد تحميل الصفحة وحاول مجدداً.";
    NotFound => "Not found.", "غير موجود.";
    BadRequest => "The request is not valid.", "الطلب غير صالح.";
    Conflict => "This cannot be done now.", "لا يمكن القيام بهذا الآن.";
    Failed => "Something went wrong on the control plane.", "حدث خطأ في لوحة التحكم.";
    Back => "Back to the overview", "العودة إلى النظرة العامة";
    ReleaseOptional => "Release id (empty: cut from the ref)", "معرّف الإصدار (فارغ: يُقتطع من المرجع)";
    RollbackTo => "Release to go back to (empty: the previous one)", "الإصدار المراد الرجوع إليه (فارغ: السابق)";
    Viewer => "viewer", "مشاهد";
    Deployer => "deployer", "ناشر";
    Admin => "admin", "مسؤول";
    StatusPending => "pending", "معلّق";
    StatusRunning => "running", "قيد التنفيذ";
    StatusSucceeded => "succeeded", "نجح";
    StatusFailed => "failed", "فشل";
    StatusCancelled => "cancelled", "أُلغي";
    StatusInterrupted => "interrupted", "انقطع";
    StatusQueued => "queued", "في الطابور";
    StatusWaiting => "waiting", "بانتظار";
    StatusUnknown => "unknown", "غير معروف";
    KindDeploy => "deploy", "نشر";
    KindRollback => "rollback", "تراجع";
    Period24h => "24 hours", "24 ساعة";
    Period7d => "7 days", "7 أيام";
    Period30d => "30 days", "30 يوماً";
    AwaitingApproval => "Awaiting approval", "بانتظار الموافقة";
    RequestedBy => "Requested by", "طلبه";
    ApprovalsCount => "Approvals (so far / required)", "الموافقات (حتى الآن / المطلوبة)";
    Expires => "Request expires", "تنتهي صلاحية الطلب";
    NoApprovals => "No decision yet.", "لا قرار بعد.";
    Approved => "Approved by", "وافق عليه";
    Rejected => "Rejected by", "رفضه";
    Overridden => "Overridden by", "تجاوزه";
    Approve => "Approve", "موافقة";
    Reject => "Reject", "رفض";
    Override => "Override and start", "تجاوز وابدأ";
    OverrideHelp => "(admin: starts it whatever approvals are missing)", "(مسؤول: يبدأ النشر مهما نقصت الموافقات)";
    Drift => "Drift", "الانحراف";
    NoDrift => "No drift check has run yet.", "لم يُجرَ أي فحص انحراف بعد.";
    DriftClean => "clean", "مطابق";
    DriftDrifted => "drifted", "منحرف";
    DriftedPaths => "Paths drifted", "المسارات المنحرفة";
    Checked => "Checked", "وقت الفحص";
    OwnRequest => "You requested this deployment: another deployer or admin must approve it.", "أنت طلبت هذا النشر: يجب أن يوافق عليه ناشر أو مسؤول آخر.";
}

/// `template` with each `{name}` replaced by its value (values are HTML
/// already).
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    values
        .iter()
        .fold(template.to_owned(), |text, (name, value)| {
            text.replace(&format!("{{{name}}}"), value)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_has_both_languages() {
        for msg in Msg::ALL {
            assert!(!msg.text(Lang::En).is_empty(), "{msg:?}");
            assert!(!msg.text(Lang::Ar).is_empty(), "{msg:?}");
        }
    }

    #[test]
    fn the_language_follows_accept_language() {
        assert_eq!(Lang::from_accept("ar-EG,ar;q=0.9,en;q=0.8"), Some(Lang::Ar));
        assert_eq!(Lang::from_accept("fr-FR, en-GB;q=0.8"), Some(Lang::En));
        assert_eq!(Lang::from_accept("fr"), None);
        assert_eq!(Lang::from_code("x"), None);
    }
}
