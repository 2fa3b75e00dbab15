//! Rules both stores apply the same way, whatever their SQL.

use tollgate_api::{ConsumerStatus, ProviderModel};

use super::{ConsumerPatch, ProviderSpec, StoreError, StoreResult};

/// Model names are unique across providers (the data plane routes by them):
/// `others` are the other providers' names and models (as stored, JSON).
pub(crate) fn models_free<'a>(
    spec: &ProviderSpec,
    others: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> StoreResult<()> {
    for (name, models) in others {
        let models: Vec<ProviderModel> =
            serde_json::from_str(models).map_err(|e| StoreError::Backend(e.into()))?;
        if let Some(taken) = spec
            .models
            .iter()
            .find(|m| models.iter().any(|o| o.name == m.name))
        {
            return Err(StoreError::Conflict(format!(
                "the model `{}` is already served by the provider `{name}`",
                taken.name
            )));
        }
    }
    Ok(())
}

/// The audit action of a consumer's update: a status change says which.
pub(crate) fn consumer_action(patch: &ConsumerPatch, current: ConsumerStatus) -> &'static str {
    match patch.status {
        Some(s) if s != current => match s {
            ConsumerStatus::Suspended => "consumer.suspend",
            ConsumerStatus::Active => "consumer.reactivate",
        },
        _ => "consumer.update",
    }
}
