//! What the emulator holds at one moment, typed: the plans, the instances and the call log that
//! `GET /_emulator/state` returns as JSON, for embedders that read the emulator's inventory.

use serde::Serialize;

use crate::state::{CallRecord, Connection, Plan};

/// The emulated cloud at one moment; its JSON is the body of `GET /_emulator/state`.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Every backup plan ever created (released ones included), oldest first.
    pub plans: Vec<Plan>,
    /// The RDS instances, in the order they were added.
    pub instances: Vec<InstanceSnapshot>,
    /// The call log, oldest first (the most recent 10,000 calls).
    pub calls: Vec<CallRecord>,
}

/// An RDS instance as a snapshot shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceSnapshot {
    /// Region id.
    pub region: String,
    /// Instance id.
    pub db_instance_id: String,
    /// Engine, e.g. `MySQL`.
    pub engine: String,
    /// Status at the time of the snapshot, e.g. `Running` or `DBInstanceNetTypeChanging`.
    pub status: String,
    /// `VPC` or `Classic`.
    pub network_type: String,
    /// Endpoints, the internal one first.
    pub connections: Vec<Connection>,
}

impl Snapshot {
    /// The plan with id `backup_plan_id`, if it was ever created.
    pub fn plan(&self, backup_plan_id: &str) -> Option<&Plan> {
        self.plans
            .iter()
            .find(|p| p.backup_plan_id == backup_plan_id)
    }

    /// The logged calls of `action`, oldest first.
    pub fn calls_of<'a>(&'a self, action: &'a str) -> impl Iterator<Item = &'a CallRecord> + 'a {
        self.calls.iter().filter(move |c| c.action == action)
    }

    /// The logged calls whose outcome was `outcome` (`Success` or an error code), oldest first.
    pub fn calls_with_outcome<'a>(
        &'a self,
        outcome: &'a str,
    ) -> impl Iterator<Item = &'a CallRecord> + 'a {
        self.calls.iter().filter(move |c| c.outcome == outcome)
    }

    /// The public endpoints of every instance, or of the instance `db_instance_id` only.
    pub fn public_connections(&self, db_instance_id: Option<&str>) -> Vec<&Connection> {
        self.instances
            .iter()
            .filter(|i| db_instance_id.is_none_or(|id| i.db_instance_id == id))
            .flat_map(|i| &i.connections)
            .filter(|c| c.ip_type == "Public")
            .collect()
    }
}
