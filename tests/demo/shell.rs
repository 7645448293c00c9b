//! Shell quoting for the commands the demo prints, so each `$ slipctl ...`
//! line can be pasted into a POSIX shell as it stands.

use std::borrow::Cow;

/// `args` joined by spaces, each quoted when the shell would split or
/// expand it.
pub fn command_line<'a>(args: impl IntoIterator<Item = &'a str>) -> String {
    args.into_iter().map(quote).collect::<Vec<_>>().join(" ")
}

/// `arg` as is when every character is inert in a shell word; otherwise in
/// single quotes, where only `'` itself needs care (`'\''`).
pub fn quote(arg: &str) -> Cow<'_, str> {
    let inert = |c: char| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c);
    if !arg.is_empty() && arg.chars().all(inert) {
        Cow::Borrowed(arg)
    } else {
        Cow::Owned(format!("'{}'", arg.replace('\'', r"'\''")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_stay_bare() {
        assert_eq!(
            command_line([
                "deploy",
                "web",
                "--env",
                "prod",
                "--address",
                "127.0.0.1:7444"
            ]),
            "deploy web --env prod --address 127.0.0.1:7444"
        );
        assert_eq!(
            quote("/tmp/slipway-demo-x/repo"),
            "/tmp/slipway-demo-x/repo"
        );
    }

    #[test]
    fn words_a_shell_would_split_or_expand_are_quoted() {
        assert_eq!(
            command_line(["deploy", "-m", "first deploy"]),
            "deploy -m 'first deploy'"
        );
        assert_eq!(quote(""), "''");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$HOME"), "'$HOME'");
        assert_eq!(quote("a*"), "'a*'");
        assert_eq!(quote("~"), "'~'");
    }
}
