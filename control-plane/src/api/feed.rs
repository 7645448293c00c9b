//! `slipway.control.v1.FeedService`: the live feed of state changes, for
//! any viewer.

use slipway_proto::{
    control::v1::*,
    identity::Role,
    validate::{self, InvalidField},
};
use tonic::{Request, Response};

use super::{EventStream, Reply};
use crate::{
    Context,
    auth::require,
    feed::{Filter, MAX_WAIT, Start},
};

/// Kinds a request may name at most (there are four).
const MAX_KINDS: usize = 8;

/// `slipway.control.v1.FeedService`.
pub struct Feed(pub Context);

/// A watch request, checked.
struct Watch {
    filter: Filter,
    start: Start,
    follow: bool,
}

impl TryFrom<WatchEventsRequest> for Watch {
    type Error = InvalidField;

    fn try_from(req: WatchEventsRequest) -> Result<Self, InvalidField> {
        let named = |field: &str, value: String| -> Result<Option<String>, InvalidField> {
            if value.is_empty() {
                return Ok(None);
            }
            validate::name(field, &value)?;
            Ok(Some(value))
        };
        validate::count("kinds", req.kinds.len(), MAX_KINDS)?;
        let kinds = req
            .kinds
            .iter()
            .map(|&k| match FeedKind::try_from(k) {
                Ok(FeedKind::Unspecified) | Err(_) => Err(InvalidField::new(
                    "kinds",
                    format!("{k} is not a feed kind"),
                )),
                Ok(kind) => Ok(kind),
            })
            .collect::<Result<_, _>>()?;
        if req.from_now && req.after != 0 {
            return Err(InvalidField::new(
                "from_now",
                "cannot be combined with after: choose one place to start",
            ));
        }
        Ok(Self {
            filter: Filter {
                app: named("app", req.app)?,
                environment: named("environment", req.environment)?,
                kinds,
            },
            start: if req.from_now {
                Start::Now
            } else {
                Start::After(req.after)
            },
            follow: req.follow,
        })
    }
}

#[tonic::async_trait]
impl feed_service_server::FeedService for Feed {
    type WatchEventsStream = EventStream<WatchEventsResponse>;

    async fn watch_events(
        &self,
        request: Request<WatchEventsRequest>,
    ) -> Reply<Self::WatchEventsStream> {
        require(&request, Role::Viewer)?;
        let watch = Watch::try_from(request.into_inner())?;
        let stream = self.0.events.feed().watch(
            self.0.store.clone(),
            watch.filter,
            watch.start,
            watch.follow,
            MAX_WAIT,
        );
        Ok(Response::new(Box::pin(stream)))
    }
}
