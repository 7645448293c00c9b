//! Registering a daemon's metrics in one line each: a metric that starts
//! at its default (a counter, a gauge, a family of either), or a family of
//! histograms with its buckets.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{family::Family, histogram::Histogram},
    registry::{Metric, Registry, Unit},
};

/// A family of histograms, each made with the family's buckets.
pub type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Registers a new metric as `name` (a counter gets `_total`, a unit its
/// suffix) and returns it.
pub fn register<M: Metric + Clone + Default>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
) -> M {
    let metric = M::default();
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, metric.clone()),
        None => registry.register(name, help, metric.clone()),
    }
    metric
}

/// Registers a family of histograms in `unit`, each made by `make`.
pub fn histograms<L>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Unit,
    make: fn() -> Histogram,
) -> Histograms<L>
where
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
{
    let family = Family::new_with_constructor(make);
    registry.register_with_unit(name, help, unit, family.clone());
    family
}
