//! A subscription request, checked at the API edge: a name, an http(s) URL
//! within its bound, optional app and environment names, known event names
//! and a format.

use slipway_proto::{
    control::v1::{CreateSubscriptionRequest, NotificationFormat},
    limits,
    validate::{self, InvalidField},
};

use super::render::EVENTS;

/// A subscription to create.
#[derive(Debug)]
pub struct NewSubscription {
    pub name: String,
    pub url: String,
    pub app: String,
    pub environment: String,
    pub events: Vec<String>,
    pub format: NotificationFormat,
}

fn optional_name(field: &str, value: &str) -> Result<(), InvalidField> {
    if value.is_empty() {
        Ok(())
    } else {
        validate::name(field, value)
    }
}

/// An absolute http or https URL with a host, within [`limits::URL`].
pub fn url(value: &str) -> Result<(), InvalidField> {
    validate::bounded("url", value, limits::URL)?;
    let parsed = reqwest::Url::parse(value)
        .map_err(|err| InvalidField::new("url", format!("{value:?} is not a URL: {err}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(InvalidField::new(
            "url",
            format!("{value:?}: only http:// and https:// URLs with a host are allowed"),
        ));
    }
    Ok(())
}

impl TryFrom<CreateSubscriptionRequest> for NewSubscription {
    type Error = InvalidField;

    fn try_from(req: CreateSubscriptionRequest) -> Result<Self, InvalidField> {
        validate::name("name", &req.name)?;
        url(&req.url)?;
        optional_name("app", &req.app)?;
        optional_name("environment", &req.environment)?;
        validate::count("events", req.events.len(), EVENTS.len())?;
        if let Some(unknown) = req.events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
            let shown: String = unknown.chars().take(64).collect();
            return Err(InvalidField::new(
                "events",
                format!("{shown:?} is not an event; known: {}", EVENTS.join(", ")),
            ));
        }
        let format = match NotificationFormat::try_from(req.format) {
            Ok(NotificationFormat::Unspecified) => NotificationFormat::Json,
            Ok(format) => format,
            Err(_) => {
                let reason = format!("{} is not a notification format", req.format);
                return Err(InvalidField::new("format", reason));
            }
        };
        Ok(Self {
            name: req.name,
            url: req.url,
            app: req.app,
            environment: req.environment,
            events: req.events,
            format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> CreateSubscriptionRequest {
        CreateSubscriptionRequest {
            name: "ops".into(),
            url: "https://hooks.example.com/slipway".into(),
            ..Default::default()
        }
    }

    #[test]
    fn bad_subscriptions_are_refused_with_the_field() {
        let refused = |req: CreateSubscriptionRequest| {
            NewSubscription::try_from(req)
                .expect_err("refused")
                .to_string()
        };
        assert!(NewSubscription::try_from(request()).is_ok());
        for bad in ["ftp://x/", "file:///etc/passwd", "not a url", "http://"] {
            let err = refused(CreateSubscriptionRequest {
                url: bad.into(),
                ..request()
            });
            assert!(err.contains("url"), "{bad}: {err}");
        }
        let long = format!("https://x/{}", "a".repeat(limits::URL));
        assert!(
            refused(CreateSubscriptionRequest {
                url: long,
                ..request()
            })
            .contains("url")
        );
        let err = refused(CreateSubscriptionRequest {
            events: vec!["deployment.exploded".into()],
            ..request()
        });
        assert!(err.contains("events"), "{err}");
        let err = refused(CreateSubscriptionRequest {
            format: 9,
            ..request()
        });
        assert!(err.contains("format"), "{err}");
    }
}
