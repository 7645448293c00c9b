//! `slipway.control.v1.NotificationService`: webhook subscriptions, their
//! test deliveries and delivery logs. An admin changes or tests them; a
//! viewer reads them (never their secrets).

use slipway_proto::{control::v1::*, identity::Role, validate};
use tonic::{Request, Response};

use super::{Checked, Reply, audited};
use crate::{Context, auth::require, notify, store};

/// `slipway.control.v1.NotificationService`.
pub struct Notifications(pub Context);

#[tonic::async_trait]
impl notification_service_server::NotificationService for Notifications {
    async fn create_subscription(
        &self,
        request: Request<CreateSubscriptionRequest>,
    ) -> Reply<CreateSubscriptionResponse> {
        audited(&self.0, request, |ctx, _caller, new| async move {
            let feed = ctx.events.feed();
            let (sub, secret) = ctx.notifiers.create(&ctx.store, feed, new).await?;
            let message = format!("subscription {} posts to {}", sub.id, sub.url);
            let subscription = Some(sub);
            Ok((
                CreateSubscriptionResponse {
                    subscription,
                    secret,
                },
                message,
            ))
        })
        .await
    }

    async fn list_subscriptions(
        &self,
        request: Request<ListSubscriptionsRequest>,
    ) -> Reply<ListSubscriptionsResponse> {
        require(&request, Role::Viewer)?;
        let subscriptions =
            store::notify::list(&self.0.store).map_err(crate::error::Error::from)?;
        Ok(Response::new(ListSubscriptionsResponse { subscriptions }))
    }

    async fn delete_subscription(
        &self,
        request: Request<DeleteSubscriptionRequest>,
    ) -> Reply<DeleteSubscriptionResponse> {
        audited(&self.0, request, |ctx, _caller, Checked(req)| async move {
            let sub = ctx.notifiers.remove(&ctx.store, &req.name).await?;
            let message = format!("removed subscription {}", sub.id);
            Ok((DeleteSubscriptionResponse {}, message))
        })
        .await
    }

    async fn test_subscription(
        &self,
        request: Request<TestSubscriptionRequest>,
    ) -> Reply<TestSubscriptionResponse> {
        audited(&self.0, request, |ctx, _caller, Checked(req)| async move {
            let delivery = ctx.notifiers.test(&ctx.store, &req.name).await?;
            let message = match delivery.delivered {
                true => format!("delivered, HTTP {}", delivery.http_status),
                false => format!("not delivered: {}", delivery.error),
            };
            let delivery = Some(delivery);
            Ok((TestSubscriptionResponse { delivery }, message))
        })
        .await
    }

    async fn list_deliveries(
        &self,
        request: Request<ListDeliveriesRequest>,
    ) -> Reply<ListDeliveriesResponse> {
        require(&request, Role::Viewer)?;
        validate::name("name", &request.get_ref().name)?;
        let sub = notify::get(&self.0.store, &request.get_ref().name)?;
        let deliveries =
            store::notify::deliveries(&self.0.store, &sub.id).map_err(crate::error::Error::from)?;
        Ok(Response::new(ListDeliveriesResponse { deliveries }))
    }
}
