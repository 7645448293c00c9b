//! The single writer of one deployment's record and event log: each event is
//! folded into the record and both are committed together, durably, before
//! any stream is woken.

use slipway_proto::control::v1::{
    Deployment, DeploymentEvent, DeploymentStatus, EventKind, FeedItem, FeedKind,
};

use crate::{
    Context,
    domain::event::is_final,
    events::EventHub,
    observe::DeploymentObserver,
    store::{self, Op, Store, StoreError, deployment_text, deployments},
};

/// The single writer of one deployment's record and event log.
pub struct Recorder {
    store: Store,
    events: EventHub,
    observer: DeploymentObserver,
    deployment: Deployment,
    /// The searchable text last written to the text index by this writer.
    indexed_text: Option<[String; 4]>,
}

impl Recorder {
    /// A writer for `deployment`; its streams can subscribe from now on.
    pub fn open(ctx: &Context, deployment: Deployment) -> Self {
        ctx.events.open(&deployment.id);
        Self::unannounced(ctx, deployment)
    }

    /// A writer for a new deployment whose number a concurrent start may
    /// take first: its streams open only once its first event is recorded
    /// ([`Recorder::announce`]), so a start that loses the number never
    /// closes the streams of the one that won it.
    pub fn unannounced(ctx: &Context, deployment: Deployment) -> Self {
        Self {
            store: ctx.store.clone(),
            events: ctx.events.clone(),
            observer: DeploymentObserver::new(ctx.metrics.clone(), &deployment),
            deployment,
            indexed_text: None,
        }
    }

    /// Opens the streams of a deployment made with
    /// [`Recorder::unannounced`], once its first event is recorded.
    pub fn announce(&self) {
        let id = &self.deployment.id;
        self.events.open(id);
        self.events.published(id, self.deployment.last_event);
    }

    /// Gives up on a deployment whose first event could not be recorded.
    pub fn abandon(self) {
        self.events.close(&self.deployment.id);
    }

    /// The deployment as recorded so far.
    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// Records, with the next event, who cancelled the deployment and why.
    pub fn note_cancel(&mut self, by: &str, reason: &str) {
        self.deployment.cancelled_by = by.to_owned();
        self.deployment.reason = reason.to_owned();
    }

    /// Records, with the next event, the automatic rollback that undid it.
    pub fn note_rolled_back_by(&mut self, id: &str) {
        self.deployment.rolled_back_by = id.to_owned();
    }

    /// Changes the record with the next event: a waiting deployment's place,
    /// or its hosts and batches when it starts.
    pub fn amend(&mut self, change: impl FnOnce(&mut Deployment)) {
        change(&mut self.deployment);
    }

    /// Records, with the next event, the reason it ended as it did.
    pub fn note_reason(&mut self, reason: &str) {
        self.deployment.reason = reason.to_owned();
    }

    /// Appends an event, updating the record, durably; then wakes the streams.
    pub async fn record(&mut self, event: DeploymentEvent) -> Result<(), StoreError> {
        self.record_with(event, Vec::new()).await
    }

    /// Appends an event together with `ops` (taking or freeing the lock) in
    /// one transaction.
    pub async fn record_with(
        &mut self,
        event: DeploymentEvent,
        ops: Vec<Op>,
    ) -> Result<(), StoreError> {
        self.record_all(vec![Entry::from(event)], ops).await
    }

    /// Appends events in order in one transaction (a group commit): the
    /// record is folded and written once, then the streams are woken once.
    pub async fn record_all(
        &mut self,
        entries: Vec<Entry>,
        mut ops: Vec<Op>,
    ) -> Result<(), StoreError> {
        let mut next = self.deployment.clone();
        let mut last = false;
        let mut recorded = Vec::with_capacity(entries.len());
        let mut feed = Vec::new();
        for Entry { mut event, sent } in entries {
            next.last_event += 1;
            event.sequence = next.last_event;
            event.deployment_id = next.id.clone();
            event.time = Some(slipway_proto::now());
            if let Some(sent) = sent {
                event.host_bytes_sent = add_sent(&mut next, &event.host, sent);
            }
            let before = host_status(&next, &event.host);
            let status_before = next.status;
            apply(&mut next, &event);
            let after = host_status(&next, &event.host);
            let changed = if event.host.is_empty() {
                event.sequence == 1 || status_before != next.status
            } else {
                before != after
            };
            if changed && event.kind() == EventKind::Status {
                feed.push(feed_item(&next, &event));
            }
            self.observer.recorded(&next, &event);
            ops.extend(deployments::host_changed(
                &next.id,
                &event.host,
                before,
                after,
            ));
            last = is_final(&event);
            if event.sequence == 1 {
                ops.extend(deployments::created(&next));
            }
            if last {
                ops.extend(deployments::finished(&next));
            }
            ops.push(store::events::append(&event));
            recorded.push(event);
        }
        ops.push(deployments::put(&next));
        // The text index follows the record's text in the same batch: at
        // the first event, and when a waiting deployment gets its release.
        let text = deployment_text::searchable(&next);
        if self.indexed_text.as_ref() != Some(&text) {
            ops.extend(deployment_text::entries(&next, &text));
        }
        self.events.feed().commit(&self.store, feed, ops).await?;
        self.indexed_text = Some(text);
        for event in &recorded {
            super::story::tell(&next, event);
        }
        self.deployment = next;
        self.observer.committed(recorded.len());
        let id = &self.deployment.id;
        self.events.published(id, self.deployment.last_event);
        if last {
            self.events.close(id);
            self.observer.finished(&self.store, &self.deployment);
        }
        Ok(())
    }
}

/// One event to record, with the contents it reports sent to its host.
pub struct Entry {
    /// The event (numbered and stamped when recorded).
    pub event: DeploymentEvent,
    /// Objects and bytes sent to the event's host.
    pub sent: Option<(u64, u64)>,
}

impl From<DeploymentEvent> for Entry {
    fn from(event: DeploymentEvent) -> Self {
        Self { event, sent: None }
    }
}

/// The feed item of a status change `event` made in `d`: the deployment's
/// own, or one of its hosts'.
fn feed_item(d: &Deployment, event: &DeploymentEvent) -> FeedItem {
    let kind = if event.host.is_empty() {
        FeedKind::Deployment
    } else {
        FeedKind::Host
    };
    FeedItem {
        kind: kind as i32,
        app: d.app.clone(),
        environment: d.environment.clone(),
        deployment_id: d.id.clone(),
        host: event.host.clone(),
        deployment_kind: d.kind,
        status: event.status,
        release: d.release.clone(),
        message: event.message.clone(),
        event_sequence: event.sequence,
        time: event.time,
        ..FeedItem::default()
    }
}

/// A host's status in the record; 0 for the deployment itself.
fn host_status(d: &Deployment, host: &str) -> i32 {
    d.hosts
        .iter()
        .find(|h| !host.is_empty() && h.host == host)
        .map_or(0, |h| h.status)
}

/// Adds to a host's transfer counters (a host may be sent contents twice:
/// a delta, then everything); the host's bytes sent so far.
fn add_sent(d: &mut Deployment, host: &str, (objects, bytes): (u64, u64)) -> u64 {
    d.hosts.iter_mut().find(|h| h.host == host).map_or(0, |h| {
        h.objects_sent += objects;
        h.bytes_sent += bytes;
        h.bytes_sent
    })
}

/// Folds an event into the deployment record.
fn apply(d: &mut Deployment, e: &DeploymentEvent) {
    if e.host.is_empty() {
        if e.kind() == EventKind::Status {
            d.status = e.status;
            if e.status() == DeploymentStatus::Failed || e.status() == DeploymentStatus::Interrupted
            {
                d.error = e.message.clone();
            }
        }
        if !e.stage.is_empty() {
            d.stage = e.stage.clone();
        }
        if e.percent > 0 {
            d.percent = e.percent;
        }
    } else if let Some(h) = d.hosts.iter_mut().find(|h| h.host == e.host) {
        if e.kind() == EventKind::Status {
            h.status = e.status;
            if e.status() == DeploymentStatus::Failed || e.status() == DeploymentStatus::Unknown {
                h.error = e.message.clone();
            }
            if e.status() == DeploymentStatus::Succeeded {
                h.switched = true;
                // A host settled after its outcome was unknown.
                h.error.clear();
            }
        }
        if !e.stage.is_empty() {
            h.stage = e.stage.clone();
        }
        if !e.agent_run_id.is_empty() {
            h.agent_runs
                .insert(e.agent_run_id.clone(), e.agent_sequence);
        }
        h.percent = h.percent.max(e.percent);
        let total: u32 = d.hosts.iter().map(|h| h.percent).sum();
        d.percent = total / d.hosts.len().max(1) as u32;
    }
    if is_final(e) {
        if e.status() == DeploymentStatus::Succeeded {
            d.percent = 100;
        }
        d.finished_at = e.time;
        if let (Some(start), Some(end)) = (&d.started_at, &e.time) {
            let ms = (end.seconds - start.seconds) * 1000
                + i64::from(end.nanos - start.nanos) / 1_000_000;
            d.duration_ms = ms.max(0) as u64;
        }
    }
}
