//! Typed, ordered maps of every resource, each with its store mod revision.
use super::ecr_records::{ImageRecord, RepositoryRecord, TagRecord};
use super::iam_records::{
    AccessKeyRecord, ManagedPolicyRecord, RoleRecord, SessionKeyRecord, UserRecord,
};
use super::indexed_task::IndexedTask;
use super::keys::{EcrKind, IamKind, NetworkKind, StoreKey};
use super::logs_records::{LogGroupRecord, LogStreamRecord};
pub use super::records::{
    AccountSettingRecord, ClusterScoped, FamilyRecord, NetworkDefaults, PublicIpRecord,
    RegionScoped, ServiceRecord, TaskDefinitionRecord, TaskRecord, Versioned,
};
use super::secrets_records::{ParameterRecord, SecretRecord};
use berth_api::ecs::{Cluster, ContainerInstance, TaskDefinition};
use berth_model::awsvpc::TaskEni;
use berth_model::fargate::FleetHost;
use berth_model::vpc::{SecurityGroup, Subnet, Vpc};
use berth_model::Scope;
use berth_store::{EventBatch, EventKind, KeyValue};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

pub type TaskDefinitionIter<'a> = Box<
    dyn Iterator<
            Item = (
                &'a (Scope, String, i32),
                &'a Versioned<TaskDefinitionRecord>,
            ),
        > + 'a,
>;

#[derive(Default)]
pub struct Index {
    pub revision: u64,
    pub clusters: BTreeMap<(Scope, String), Versioned<Cluster>>,
    pub families: BTreeMap<(Scope, String), Versioned<FamilyRecord>>,
    pub task_definitions: BTreeMap<(Scope, String, i32), Versioned<TaskDefinitionRecord>>,
    /// (scope, setting name, principal ARN)
    pub account_settings: BTreeMap<(Scope, String, String), Versioned<AccountSettingRecord>>,
    pub tasks: BTreeMap<ClusterScoped, Versioned<IndexedTask>>,
    pub container_instances: BTreeMap<ClusterScoped, Versioned<ContainerInstance>>,
    /// (scope, cluster, service name)
    pub services: BTreeMap<ClusterScoped, Versioned<ServiceRecord>>,
    /// Ids of each service's tasks (by task group), so a controller pass reads only its own.
    pub service_tasks: BTreeMap<ClusterScoped, BTreeSet<String>>,
    /// Ids of the tasks not STOPPED on each container instance (scope, cluster, instance ARN):
    /// what an agent's poll answers and what a lost host gives up.
    pub instance_tasks: BTreeMap<ClusterScoped, BTreeSet<String>>,
    pub vpcs: BTreeMap<RegionScoped, Versioned<Vpc>>,
    pub subnets: BTreeMap<RegionScoped, Versioned<Subnet>>,
    pub security_groups: BTreeMap<RegionScoped, Versioned<SecurityGroup>>,
    pub network_defaults: BTreeMap<RegionScoped, Versioned<NetworkDefaults>>,
    /// Task ENIs by (scope, `{subnet}/{ip}`).
    pub enis: BTreeMap<RegionScoped, Versioned<TaskEni>>,
    /// The platform's fleet hosts, by id.
    pub fleet_hosts: BTreeMap<String, Versioned<FleetHost>>,
    /// The public pool's addresses held by task ENIs (of any account).
    pub public_ips: BTreeMap<String, Versioned<PublicIpRecord>>,
    /// The tasks not STOPPED on each fleet host, of any account.
    pub fleet_tasks: BTreeMap<String, BTreeSet<ClusterScoped>>,
    /// IAM roles, users and customer managed policies by (account, name).
    pub iam_roles: BTreeMap<(String, String), Versioned<RoleRecord>>,
    pub iam_users: BTreeMap<(String, String), Versioned<UserRecord>>,
    pub iam_policies: BTreeMap<(String, String), Versioned<ManagedPolicyRecord>>,
    /// Counts changes to customer managed policies: users' and roles' gathered lists
    /// made before the last one are gathered again.
    pub iam_policies_revision: u64,
    /// IAM users' access keys by key id.
    pub access_keys: BTreeMap<String, Versioned<AccessKeyRecord>>,
    pub session_key: Option<Versioned<SessionKeyRecord>>,
    /// ECR repositories by (scope, name).
    pub ecr_repositories: BTreeMap<RegionScoped, Versioned<RepositoryRecord>>,
    /// Image manifests by (scope, repository, digest).
    pub ecr_images: BTreeMap<ClusterScoped, Versioned<ImageRecord>>,
    /// Tags by (scope, repository, tag).
    pub ecr_tags: BTreeMap<ClusterScoped, Versioned<TagRecord>>,
    /// The tags on each image (scope, repository, digest), from `ecr_tags`.
    pub ecr_image_tags: BTreeMap<ClusterScoped, BTreeSet<String>>,
    /// Log groups by (scope, name), and their streams by (scope, group, stream).
    pub log_groups: BTreeMap<RegionScoped, Versioned<LogGroupRecord>>,
    pub log_streams: BTreeMap<ClusterScoped, Versioned<LogStreamRecord>>,
    /// Secrets Manager secrets and SSM parameters by (scope, name).
    pub secrets: BTreeMap<RegionScoped, Versioned<SecretRecord>>,
    pub parameters: BTreeMap<RegionScoped, Versioned<ParameterRecord>>,
    /// Services whose record, tasks or cluster's instances changed since the controller last looked.
    pub dirty_services: BTreeSet<ClusterScoped>,
    /// One shared copy of each task definition revision that tasks run (revisions never change).
    task_definition_copies: HashMap<String, Arc<TaskDefinition>>,
}

fn decode<T: for<'de> Deserialize<'de>>(kv: &KeyValue) -> Option<Versioned<T>> {
    match serde_json::from_slice(&kv.value) {
        Ok(value) => Some(Versioned {
            mod_revision: kv.mod_revision,
            value,
        }),
        Err(e) => {
            tracing::error!(key = %kv.key, error = %e, "undecodable record in the store");
            None
        }
    }
}

fn set_in<K: Ord, T: for<'de> Deserialize<'de>>(
    map: &mut BTreeMap<K, Versioned<T>>,
    k: K,
    value: Option<&KeyValue>,
) {
    match value.map(decode) {
        Some(Some(v)) => {
            map.insert(k, v);
        }
        Some(None) => {}
        None => {
            map.remove(&k);
        }
    }
}

impl Index {
    /// How many resources of each kind the view holds (the metrics' index sizes).
    pub fn sizes(&self) -> [(&'static str, usize); 18] {
        [
            ("clusters", self.clusters.len()),
            ("task_definitions", self.task_definitions.len()),
            ("tasks", self.tasks.len()),
            ("container_instances", self.container_instances.len()),
            ("services", self.services.len()),
            ("vpcs", self.vpcs.len()),
            ("subnets", self.subnets.len()),
            ("security_groups", self.security_groups.len()),
            ("enis", self.enis.len()),
            ("fleet_hosts", self.fleet_hosts.len()),
            ("iam_roles", self.iam_roles.len()),
            ("iam_users", self.iam_users.len()),
            ("ecr_repositories", self.ecr_repositories.len()),
            ("ecr_images", self.ecr_images.len()),
            ("log_groups", self.log_groups.len()),
            ("log_streams", self.log_streams.len()),
            ("secrets", self.secrets.len()),
            ("parameters", self.parameters.len()),
        ]
    }

    pub fn load(&mut self, revision: u64, kvs: &[KeyValue]) {
        *self = Index::default();
        // Tasks, by far the most numerous, are built in bulk: sorted once, nodes full.
        let mut tasks = Vec::new();
        for kv in kvs {
            match StoreKey::decode(&kv.key) {
                Some(StoreKey::Task { scope, cluster, id }) => {
                    if let Some(t) = self.decode_task(kv) {
                        tasks.push(((scope, cluster, id), t));
                    }
                }
                _ => self.set(&kv.key, Some(kv)),
            }
        }
        self.tasks = tasks.into_iter().collect();
        let on_fleet: Vec<ClusterScoped> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.value.summary.fleet_host.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        for k in on_fleet {
            self.index_instance_task(&k, true);
        }
        let mut of_service = vec![];
        let mut on_instance = vec![];
        for ((scope, cluster, id), t) in &self.tasks {
            let s = &t.value.summary;
            if let Some(name) = s.group.as_deref().and_then(|g| g.strip_prefix("service:")) {
                of_service.push(((scope, cluster.as_str(), name), id.as_str()));
            }
            if let Some(arn) = s
                .container_instance_arn
                .as_deref()
                .filter(|_| !s.is_stopped())
            {
                on_instance.push(((scope, cluster.as_str(), arn), id.as_str()));
            }
        }
        let service_tasks = group_ids(of_service);
        let instance_tasks = group_ids(on_instance);
        self.dirty_services.extend(service_tasks.keys().cloned());
        self.service_tasks = service_tasks;
        self.instance_tasks = instance_tasks;
        self.revision = revision;
    }

    pub fn apply(&mut self, batch: &EventBatch) {
        if batch.revision <= self.revision {
            return;
        }
        for e in &batch.events {
            let value = (e.kind == EventKind::Put).then_some(&e.kv);
            self.set(&e.kv.key, value);
        }
        self.revision = batch.revision;
    }

    /// Puts the decoded `value` at `key`, or removes the key when `value` is None.
    fn set(&mut self, key: &str, value: Option<&KeyValue>) {
        match StoreKey::decode(key) {
            Some(StoreKey::Cluster { scope, name }) => {
                set_in(&mut self.clusters, (scope, name), value)
            }
            Some(StoreKey::Family { scope, family }) => {
                set_in(&mut self.families, (scope, family), value)
            }
            Some(StoreKey::TaskDefinition {
                scope,
                family,
                revision,
            }) => set_in(&mut self.task_definitions, (scope, family, revision), value),
            Some(StoreKey::AccountSetting {
                scope,
                name,
                principal,
            }) => set_in(&mut self.account_settings, (scope, name, principal), value),
            Some(StoreKey::Task { scope, cluster, id }) => {
                let k = (scope, cluster, id);
                self.index_service_task(&k, false);
                self.index_instance_task(&k, false);
                match value {
                    Some(kv) => {
                        if let Some(t) = self.decode_task(kv) {
                            self.tasks.insert(k.clone(), t);
                        }
                    }
                    None => {
                        self.tasks.remove(&k);
                    }
                }
                self.index_service_task(&k, true);
                self.index_instance_task(&k, true);
            }
            Some(StoreKey::Service {
                scope,
                cluster,
                name,
            }) => {
                let k = (scope, cluster, name);
                self.dirty_services.insert(k.clone());
                set_in(&mut self.services, k, value);
            }
            Some(StoreKey::ContainerInstance { scope, cluster, id }) => {
                // An instance coming, going or draining concerns every service of its cluster.
                let names: Vec<String> = self
                    .services_in(&scope, &cluster)
                    .map(|(n, _)| n.to_string())
                    .collect();
                for n in names {
                    self.dirty_services
                        .insert((scope.clone(), cluster.clone(), n));
                }
                set_in(&mut self.container_instances, (scope, cluster, id), value)
            }
            Some(StoreKey::FleetHost { id }) => set_in(&mut self.fleet_hosts, id, value),
            Some(StoreKey::Iam {
                account,
                kind,
                name,
            }) => {
                let k = (account, name);
                match kind {
                    IamKind::Role => set_in(&mut self.iam_roles, k, value),
                    IamKind::User => set_in(&mut self.iam_users, k, value),
                    IamKind::Policy => {
                        self.iam_policies_revision += 1;
                        set_in(&mut self.iam_policies, k, value)
                    }
                }
            }
            Some(StoreKey::AccessKey { id }) => set_in(&mut self.access_keys, id, value),
            Some(StoreKey::SessionKey) => self.session_key = value.and_then(decode),
            Some(StoreKey::PublicIp { ip }) => set_in(&mut self.public_ips, ip, value),
            Some(StoreKey::Network { scope, kind, id }) => {
                let k = (scope, id);
                match kind {
                    NetworkKind::Vpc => set_in(&mut self.vpcs, k, value),
                    NetworkKind::Subnet => set_in(&mut self.subnets, k, value),
                    NetworkKind::SecurityGroup => set_in(&mut self.security_groups, k, value),
                    NetworkKind::Eni => set_in(&mut self.enis, k, value),
                    NetworkKind::Defaults => set_in(&mut self.network_defaults, k, value),
                }
            }
            Some(StoreKey::Ecr { scope, kind, name }) => self.set_ecr(scope, kind, name, value),
            Some(StoreKey::LogGroup { scope, name }) => {
                set_in(&mut self.log_groups, (scope, name), value)
            }
            Some(StoreKey::LogStream {
                scope,
                group,
                stream,
            }) => set_in(&mut self.log_streams, (scope, group, stream), value),
            Some(StoreKey::Secret { scope, name }) => {
                set_in(&mut self.secrets, (scope, name), value)
            }
            Some(StoreKey::Parameter { scope, name }) => {
                set_in(&mut self.parameters, (scope, name), value)
            }
            // Servers sharing a store coordinate under their own prefix, not the index's.
            None if key.starts_with(super::COORDINATION_PREFIX) => {}
            None => tracing::warn!(key, "unknown key in the store"),
        }
    }

    fn set_ecr(&mut self, scope: Scope, kind: EcrKind, name: String, value: Option<&KeyValue>) {
        let split = |name: &str, at: char| {
            name.rsplit_once(at)
                .map(|(a, b)| (scope.clone(), a.to_string(), b.to_string()))
        };
        match kind {
            EcrKind::Repository => set_in(&mut self.ecr_repositories, (scope, name), value),
            EcrKind::Image => {
                if let Some(k) = split(&name, '@') {
                    set_in(&mut self.ecr_images, k, value)
                }
            }
            EcrKind::Tag => {
                let Some(k) = split(&name, ':') else { return };
                let (scope, repository, tag) = k.clone();
                if let Some(old) = self.ecr_tags.get(&k) {
                    let at = (scope.clone(), repository.clone(), old.value.digest.clone());
                    if let Some(tags) = self.ecr_image_tags.get_mut(&at) {
                        tags.remove(&tag);
                        if tags.is_empty() {
                            self.ecr_image_tags.remove(&at);
                        }
                    }
                }
                set_in(&mut self.ecr_tags, k.clone(), value);
                if let Some(now) = self.ecr_tags.get(&k) {
                    self.ecr_image_tags
                        .entry((scope, repository, now.value.digest.clone()))
                        .or_default()
                        .insert(tag);
                }
            }
        }
    }

    /// The mod revision a compare-and-swap on this key must name (0: absent).
    pub fn mod_revision(&self, key: &StoreKey) -> u64 {
        match key {
            StoreKey::Cluster { scope, name } => self
                .clusters
                .get(&(scope.clone(), name.clone()))
                .map(|v| v.mod_revision),
            StoreKey::Family { scope, family } => self
                .families
                .get(&(scope.clone(), family.clone()))
                .map(|v| v.mod_revision),
            StoreKey::TaskDefinition {
                scope,
                family,
                revision,
            } => self
                .task_definitions
                .get(&(scope.clone(), family.clone(), *revision))
                .map(|v| v.mod_revision),
            StoreKey::AccountSetting {
                scope,
                name,
                principal,
            } => self
                .account_settings
                .get(&(scope.clone(), name.clone(), principal.clone()))
                .map(|v| v.mod_revision),
            StoreKey::Task { scope, cluster, id } => self
                .tasks
                .get(&(scope.clone(), cluster.clone(), id.clone()))
                .map(|v| v.mod_revision),
            StoreKey::ContainerInstance { scope, cluster, id } => self
                .container_instances
                .get(&(scope.clone(), cluster.clone(), id.clone()))
                .map(|v| v.mod_revision),
            StoreKey::Service {
                scope,
                cluster,
                name,
            } => self
                .services
                .get(&(scope.clone(), cluster.clone(), name.clone()))
                .map(|v| v.mod_revision),
            StoreKey::FleetHost { id } => self.fleet_hosts.get(id).map(|v| v.mod_revision),
            StoreKey::Iam {
                account,
                kind,
                name,
            } => {
                let k = (account.clone(), name.clone());
                match kind {
                    IamKind::Role => self.iam_roles.get(&k).map(|v| v.mod_revision),
                    IamKind::User => self.iam_users.get(&k).map(|v| v.mod_revision),
                    IamKind::Policy => self.iam_policies.get(&k).map(|v| v.mod_revision),
                }
            }
            StoreKey::AccessKey { id } => self.access_keys.get(id).map(|v| v.mod_revision),
            StoreKey::SessionKey => self.session_key.as_ref().map(|v| v.mod_revision),
            StoreKey::PublicIp { ip } => self.public_ips.get(ip).map(|v| v.mod_revision),
            StoreKey::Network { scope, kind, id } => {
                let k = (scope.clone(), id.clone());
                match kind {
                    NetworkKind::Vpc => self.vpcs.get(&k).map(|v| v.mod_revision),
                    NetworkKind::Subnet => self.subnets.get(&k).map(|v| v.mod_revision),
                    NetworkKind::SecurityGroup => {
                        self.security_groups.get(&k).map(|v| v.mod_revision)
                    }
                    NetworkKind::Eni => self.enis.get(&k).map(|v| v.mod_revision),
                    NetworkKind::Defaults => self.network_defaults.get(&k).map(|v| v.mod_revision),
                }
            }
            StoreKey::LogGroup { scope, name } => self
                .log_groups
                .get(&(scope.clone(), name.clone()))
                .map(|v| v.mod_revision),
            StoreKey::LogStream {
                scope,
                group,
                stream,
            } => self
                .log_streams
                .get(&(scope.clone(), group.clone(), stream.clone()))
                .map(|v| v.mod_revision),
            StoreKey::Secret { scope, name } => self
                .secrets
                .get(&(scope.clone(), name.clone()))
                .map(|v| v.mod_revision),
            StoreKey::Parameter { scope, name } => self
                .parameters
                .get(&(scope.clone(), name.clone()))
                .map(|v| v.mod_revision),
            StoreKey::Ecr { scope, kind, name } => {
                let split = |at: char| {
                    name.rsplit_once(at)
                        .map(|(a, b)| (scope.clone(), a.to_string(), b.to_string()))
                };
                match kind {
                    EcrKind::Repository => self
                        .ecr_repositories
                        .get(&(scope.clone(), name.clone()))
                        .map(|v| v.mod_revision),
                    EcrKind::Image => split('@')
                        .and_then(|k| self.ecr_images.get(&k))
                        .map(|v| v.mod_revision),
                    EcrKind::Tag => split(':')
                        .and_then(|k| self.ecr_tags.get(&k))
                        .map(|v| v.mod_revision),
                }
            }
        }
        .unwrap_or(0)
    }

    /// Every cluster of one account and region, by name.
    pub fn clusters_in<'a>(
        &'a self,
        scope: &Scope,
    ) -> impl Iterator<Item = &'a Versioned<Cluster>> + 'a {
        let lo = (scope.clone(), String::new());
        let s = scope.clone();
        self.clusters
            .range(lo..)
            .take_while(move |((sc, _), _)| *sc == s)
            .map(|(_, v)| v)
    }

    /// Every task of one cluster, by id.
    pub fn tasks_in<'a>(
        &'a self,
        scope: &Scope,
        cluster: &str,
    ) -> impl Iterator<Item = (&'a str, &'a Versioned<IndexedTask>)> + 'a {
        in_cluster(&self.tasks, scope, cluster)
    }

    /// Decodes a stored task into its indexed form, pointing it at the
    /// shared copy of its task definition revision (decoded only the first time).
    fn decode_task(&mut self, kv: &KeyValue) -> Option<Versioned<IndexedTask>> {
        #[derive(Deserialize)]
        struct Raw<'a> {
            #[serde(borrow)]
            task: &'a serde_json::value::RawValue,
            #[serde(borrow)]
            task_definition: &'a serde_json::value::RawValue,
            #[serde(default)]
            fleet_host: Option<String>,
            #[serde(default)]
            protected_until: Option<f64>,
        }
        let copies = &mut self.task_definition_copies;
        let decoded = serde_json::from_slice::<Raw>(&kv.value).and_then(|raw| {
            IndexedTask::from_json(raw.task.get(), raw.fleet_host, |arn| {
                if let Some(d) = arn.and_then(|a| copies.get(a)) {
                    return Ok(d.clone());
                }
                let d: Arc<TaskDefinition> =
                    Arc::new(serde_json::from_str(raw.task_definition.get())?);
                if let Some(a) = arn {
                    copies.insert(a.to_string(), d.clone());
                }
                Ok(d)
            })
            .map(|mut t| {
                t.summary.protected_until = raw.protected_until;
                t
            })
        });
        match decoded {
            Ok(value) => Some(Versioned {
                mod_revision: kv.mod_revision,
                value,
            }),
            Err(e) => {
                tracing::error!(key = %kv.key, error = %e, "undecodable task in the store");
                None
            }
        }
    }

    /// Adds (or removes) a task's id under its container instance while it is not STOPPED.
    fn index_instance_task(&mut self, key: &ClusterScoped, add: bool) {
        let Some(t) = self.tasks.get(key).map(|t| &t.value.summary) else {
            return;
        };
        if let Some(host) = t.fleet_host.as_deref() {
            if add {
                if !t.is_stopped() {
                    self.fleet_tasks
                        .entry(host.to_string())
                        .or_default()
                        .insert(key.clone());
                }
            } else if let Some(keys) = self.fleet_tasks.get_mut(host) {
                keys.remove(key);
                if keys.is_empty() {
                    self.fleet_tasks.remove(host);
                }
            }
            return;
        }
        let Some(instance) = t.container_instance_arn.as_deref() else {
            return;
        };
        let ikey = (key.0.clone(), key.1.clone(), instance.to_string());
        if add {
            if !t.is_stopped() {
                self.instance_tasks
                    .entry(ikey)
                    .or_default()
                    .insert(key.2.clone());
            }
        } else if let Some(ids) = self.instance_tasks.get_mut(&ikey) {
            ids.remove(&key.2);
            if ids.is_empty() {
                self.instance_tasks.remove(&ikey);
            }
        }
    }

    /// The tasks not STOPPED on one container instance, by id.
    pub fn tasks_on<'a>(
        &'a self,
        scope: &Scope,
        cluster: &str,
        instance_arn: &str,
    ) -> impl Iterator<Item = (&'a str, &'a Versioned<IndexedTask>)> + 'a {
        let key = (scope.clone(), cluster.to_string(), instance_arn.to_string());
        let ids = self.instance_tasks.get(&key);
        let (s, c) = (scope.clone(), cluster.to_string());
        ids.into_iter().flatten().filter_map(move |id| {
            self.tasks
                .get(&(s.clone(), c.clone(), id.clone()))
                .map(|v| (id.as_str(), v))
        })
    }

    /// The tasks not STOPPED on one fleet host, of every account.
    pub fn tasks_on_fleet_host<'a>(
        &'a self,
        host: &str,
    ) -> impl Iterator<Item = (&'a ClusterScoped, &'a Versioned<IndexedTask>)> + 'a {
        self.fleet_tasks
            .get(host)
            .into_iter()
            .flatten()
            .filter_map(move |k| self.tasks.get(k).map(|v| (k, v)))
    }

    /// Adds (or removes) a task's id under its service, if its group names one.
    fn index_service_task(&mut self, key: &ClusterScoped, add: bool) {
        let Some(group) = self
            .tasks
            .get(key)
            .and_then(|t| t.value.summary.group.clone())
        else {
            return;
        };
        let Some(service) = group.strip_prefix("service:") else {
            return;
        };
        let skey = (key.0.clone(), key.1.clone(), service.to_string());
        self.dirty_services.insert(skey.clone());
        if add {
            self.service_tasks
                .entry(skey)
                .or_default()
                .insert(key.2.clone());
        } else if let Some(ids) = self.service_tasks.get_mut(&skey) {
            ids.remove(&key.2);
            if ids.is_empty() {
                self.service_tasks.remove(&skey);
            }
        }
    }

    /// The tasks of one service (any status), by id.
    pub fn tasks_of_service<'a>(
        &'a self,
        scope: &Scope,
        cluster: &str,
        service: &str,
    ) -> impl Iterator<Item = (&'a str, &'a Versioned<IndexedTask>)> + 'a {
        let key = (scope.clone(), cluster.to_string(), service.to_string());
        let ids = self.service_tasks.get(&key);
        let (s, c) = (scope.clone(), cluster.to_string());
        ids.into_iter().flatten().filter_map(move |id| {
            self.tasks
                .get(&(s.clone(), c.clone(), id.clone()))
                .map(|v| (id.as_str(), v))
        })
    }

    /// Every service of one cluster, by name.
    pub fn services_in<'a>(
        &'a self,
        scope: &Scope,
        cluster: &str,
    ) -> impl Iterator<Item = (&'a str, &'a Versioned<ServiceRecord>)> + 'a {
        in_cluster(&self.services, scope, cluster)
    }

    /// Every container instance of one cluster, by id.
    pub fn container_instances_in<'a>(
        &'a self,
        scope: &Scope,
        cluster: &str,
    ) -> impl Iterator<Item = (&'a str, &'a Versioned<ContainerInstance>)> + 'a {
        in_cluster(&self.container_instances, scope, cluster)
    }

    pub fn task_definitions_in<'a>(&'a self, scope: &Scope) -> TaskDefinitionIter<'a> {
        self.task_definitions_range(scope, None, None, false)
    }

    /// Task definitions of a scope (or of one family in it) in (family,
    /// revision) order, starting just past `after` without walking up to it.
    pub fn task_definitions_range<'a>(
        &'a self,
        scope: &Scope,
        family: Option<&str>,
        after: Option<(&str, i32)>,
        descending: bool,
    ) -> TaskDefinitionIter<'a> {
        type Key = (Scope, String, i32);
        let at = |f: &str, r: i32| -> Key { (scope.clone(), f.to_string(), r) };
        let (mut lo, mut hi) = match family {
            Some(f) => (
                Bound::Included(at(f, i32::MIN)),
                Bound::Included(at(f, i32::MAX)),
            ),
            // "\0" after the region is the first scope past this one.
            None => {
                let next_scope = Scope::new(scope.account.clone(), format!("{}\0", scope.region));
                (
                    Bound::Included(at("", i32::MIN)),
                    Bound::Excluded((next_scope, String::new(), i32::MIN)),
                )
            }
        };
        if let Some((f, r)) = after {
            if descending {
                hi = Bound::Excluded(at(f, r));
            } else {
                lo = Bound::Excluded(at(f, r));
            }
        }
        let (l, h) = match (&lo, &hi) {
            (Bound::Included(l) | Bound::Excluded(l), Bound::Included(h) | Bound::Excluded(h)) => {
                (l, h)
            }
            _ => return Box::new(std::iter::empty()),
        };
        // BTreeMap::range panics on an empty or inverted range.
        let both_included = matches!((&lo, &hi), (Bound::Included(_), Bound::Included(_)));
        if l > h || (l == h && !both_included) {
            return Box::new(std::iter::empty());
        }
        let range = self.task_definitions.range((lo, hi));
        if descending {
            Box::new(range.rev())
        } else {
            Box::new(range)
        }
    }
}

/// Ids grouped by (scope, cluster, name), each group built in bulk.
fn group_ids(
    mut pairs: Vec<((&Scope, &str, &str), &str)>,
) -> BTreeMap<ClusterScoped, BTreeSet<String>> {
    pairs.sort_unstable();
    pairs
        .chunk_by(|a, b| a.0 == b.0)
        .map(|group| {
            let (scope, cluster, name) = group[0].0;
            let ids = group.iter().map(|(_, id)| id.to_string()).collect();
            ((scope.clone(), cluster.to_string(), name.to_string()), ids)
        })
        .collect()
}

/// Every record of one account and region in `map`, by id.
pub fn in_region<'a, T>(
    map: &'a BTreeMap<RegionScoped, Versioned<T>>,
    scope: &Scope,
) -> impl Iterator<Item = &'a T> + 'a {
    let s = scope.clone();
    map.range((scope.clone(), String::new())..)
        .take_while(move |((sc, _), _)| *sc == s)
        .map(|(_, v)| &v.value)
}

fn in_cluster<'a, T>(
    map: &'a BTreeMap<ClusterScoped, Versioned<T>>,
    scope: &Scope,
    cluster: &str,
) -> impl Iterator<Item = (&'a str, &'a Versioned<T>)> + 'a {
    let (s, c) = (scope.clone(), cluster.to_string());
    map.range((scope.clone(), cluster.to_string(), String::new())..)
        .take_while(move |((sc, cl, _), _)| *sc == s && *cl == c)
        .map(|((_, _, id), v)| (id.as_str(), v))
}

/// A transaction step that writes `value` at `key` only if nobody changed it since `index` saw it.
pub fn guarded_put<T: Serialize>(
    txn: berth_store::Txn,
    index: &Index,
    key: &StoreKey,
    value: &T,
) -> berth_store::Txn {
    let k = key.encode();
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    txn.compare_mod(k.clone(), index.mod_revision(key))
        .put(k, bytes)
}

/// A transaction step that writes `value` at `key` only if it still holds
/// `expected`: what this server's last write there put, which the view may
/// not show yet.
pub fn put_over<T: Serialize>(
    txn: berth_store::Txn,
    key: &StoreKey,
    expected: &T,
    value: &T,
) -> berth_store::Txn {
    let k = key.encode();
    let expected = serde_json::to_vec(expected).unwrap_or_default();
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    txn.compare_value(k.clone(), expected).put(k, bytes)
}

pub fn guarded_delete(txn: berth_store::Txn, index: &Index, key: &StoreKey) -> berth_store::Txn {
    let k = key.encode();
    txn.compare_mod(k.clone(), index.mod_revision(key))
        .delete(k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::ecs::Task;

    fn index_with(entries: &[(&str, &str, i32)]) -> Index {
        let mut index = Index::default();
        for (region, family, revision) in entries {
            let scope = Scope::new("111122223333", *region);
            let record = TaskDefinitionRecord {
                task_definition: Default::default(),
                tags: vec![],
            };
            let v = Versioned {
                mod_revision: 1,
                value: record,
            };
            index
                .task_definitions
                .insert((scope, family.to_string(), *revision), v);
        }
        index
    }

    fn keys(it: TaskDefinitionIter<'_>) -> Vec<(String, i32)> {
        it.map(|((_, f, r), _)| (f.clone(), *r)).collect()
    }

    #[test]
    fn task_definition_ranges_seek_and_stay_in_scope() {
        let index = index_with(&[
            ("eu-west-1", "a", 1),
            ("us-east-1", "a", 1),
            ("us-east-1", "a", 2),
            ("us-east-1", "a-x", 1),
            ("us-east-1", "b", 1),
            ("us-east-10", "a", 9),
        ]);
        let s = Scope::new("111122223333", "us-east-1");
        let all = vec![
            ("a".into(), 1),
            ("a".into(), 2),
            ("a-x".into(), 1),
            ("b".into(), 1),
        ];
        assert_eq!(keys(index.task_definitions_in(&s)), all);
        let mut rev = all.clone();
        rev.reverse();
        assert_eq!(
            keys(index.task_definitions_range(&s, None, None, true)),
            rev
        );
        assert_eq!(
            keys(index.task_definitions_range(&s, None, Some(("a", 2)), false)),
            all[2..]
        );
        assert_eq!(
            keys(index.task_definitions_range(&s, None, Some(("a-x", 1)), true)),
            all[..2].iter().rev().cloned().collect::<Vec<_>>()
        );
        assert_eq!(
            keys(index.task_definitions_range(&s, Some("a"), None, true)),
            vec![("a".into(), 2), ("a".into(), 1)]
        );
        // A token past the family's end, or before its start, yields nothing rather than panicking.
        assert!(
            keys(index.task_definitions_range(&s, Some("a"), Some(("b", 1)), false)).is_empty()
        );
        assert!(keys(index.task_definitions_range(&s, Some("b"), Some(("a", 1)), true)).is_empty());
        assert!(
            keys(index.task_definitions_range(&s, Some("a"), Some(("a", i32::MAX)), false))
                .is_empty()
        );
    }

    fn task_kv(rev: u64, id: &str, instance: &str, group: &str, status: &str) -> KeyValue {
        let scope = Scope::new("111122223333", "us-east-1");
        let record = TaskRecord {
            task: Task {
                container_instance_arn: Some(instance.into()),
                group: Some(group.into()),
                last_status: Some(status.into()),
                ..Default::default()
            },
            task_definition: Default::default(),
            fleet_host: None,
            protected_until: None,
        };
        let key = StoreKey::Task {
            scope,
            cluster: "c".into(),
            id: id.into(),
        };
        KeyValue {
            key: key.encode(),
            value: serde_json::to_vec(&record).unwrap(),
            create_revision: rev,
            mod_revision: rev,
        }
    }

    #[test]
    fn a_tasks_protection_is_read_from_the_store_and_written_back_with_it() {
        let s = Scope::new("111122223333", "us-east-1");
        let mut kv = task_kv(1, "t1", "ci-a", "service:web", "RUNNING");
        let mut record: TaskRecord = serde_json::from_slice(&kv.value).unwrap();
        record.protected_until = Some(1234.0);
        kv.value = serde_json::to_vec(&record).unwrap();
        let mut index = Index::default();
        index.load(1, &[kv, task_kv(1, "t2", "ci-a", "service:web", "RUNNING")]);
        let get = |id: &str| &index.tasks[&(s.clone(), "c".to_string(), id.to_string())].value;
        assert_eq!(get("t1").summary.protected_until, Some(1234.0));
        assert_eq!(get("t1").record().protected_until, Some(1234.0));
        assert_eq!(get("t2").summary.protected_until, None);
    }

    #[test]
    fn tasks_are_indexed_by_instance_and_service_as_they_change() {
        let s = Scope::new("111122223333", "us-east-1");
        let mut index = Index::default();
        index.load(
            3,
            &[
                task_kv(1, "t1", "ci-a", "service:web", "RUNNING"),
                task_kv(2, "t2", "ci-a", "family:x", "STOPPED"),
                task_kv(3, "t3", "ci-b", "service:web", "PENDING"),
            ],
        );
        let on = |index: &Index, i: &str| -> Vec<String> {
            index
                .tasks_on(&s, "c", i)
                .map(|(id, _)| id.to_string())
                .collect()
        };
        let of = |index: &Index| -> Vec<String> {
            index
                .tasks_of_service(&s, "c", "web")
                .map(|(id, _)| id.to_string())
                .collect()
        };
        assert_eq!(
            on(&index, "ci-a"),
            vec!["t1"],
            "STOPPED tasks leave the instance"
        );
        assert_eq!(on(&index, "ci-b"), vec!["t3"]);
        assert_eq!(of(&index), vec!["t1", "t3"]);
        // t1 stops and t3 is deleted: the instance index drops t1, the service index keeps it.
        index.apply(&EventBatch {
            revision: 4,
            events: vec![
                berth_store::Event {
                    kind: EventKind::Put,
                    kv: task_kv(4, "t1", "ci-a", "service:web", "STOPPED"),
                },
                berth_store::Event {
                    kind: EventKind::Delete,
                    kv: KeyValue {
                        value: vec![],
                        ..task_kv(4, "t3", "ci-b", "service:web", "PENDING")
                    },
                },
            ],
        });
        assert!(on(&index, "ci-a").is_empty());
        assert!(on(&index, "ci-b").is_empty());
        assert!(index.instance_tasks.is_empty());
        assert_eq!(of(&index), vec!["t1"]);
        assert!(index
            .dirty_services
            .contains(&(s.clone(), "c".into(), "web".into())));
    }
}
