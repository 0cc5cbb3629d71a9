//! RegisterTaskDefinition, DescribeTaskDefinition, ListTaskDefinitions,
//! ListTaskDefinitionFamilies, DeregisterTaskDefinition, DeleteTaskDefinitions.
use super::Ctx;
use crate::lookup::task_definition as find;
use crate::state::index::{guarded_put, put_over, FamilyRecord, Index, TaskDefinitionRecord};
use crate::state::{Batch, StoreKey};
use berth_api::ecs::*;
use berth_api::pagination::{page, Page, PageLimits};
use berth_api::ApiError;
use berth_model::task_definition::{self as td};
use berth_model::{tags, Scope};
use berth_store::Txn;

const LIST_LIMITS: PageLimits = PageLimits::new(100, 100);
const MAX_DELETE: usize = 10;

fn unable_to_describe() -> ApiError {
    ApiError::client("Unable to describe task definition.")
}

/// One RegisterTaskDefinition waiting for its family's next commit.
struct Registration {
    request: RegisterTaskDefinitionRequest,
    tags: Vec<Tag>,
    principal: String,
    now: f64,
}

/// Registrations of one family arriving together share one commit, each
/// taking the next revision in turn; an invalid one takes none. While the
/// family's previous batch is still committing, this one counts on from it
/// (`ahead`) and guards on the counter it wrote.
fn plan_registrations(
    index: &Index,
    ahead: Option<&FamilyRecord>,
    scope: &Scope,
    family: &str,
    jobs: &[Registration],
) -> Result<Batch<TaskDefinitionRecord, FamilyRecord>, ApiError> {
    let last = match ahead {
        Some(f) => Some(f.last_revision),
        None => index
            .families
            .get(&(scope.clone(), family.to_string()))
            .map(|f| f.value.last_revision),
    };
    let mut revision = last.unwrap_or(0);
    let mut txn = Txn::new();
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        let registered = td::register(scope, &job.request, revision + 1, &job.principal, job.now);
        results.push(registered.map(|task_definition| {
            revision += 1;
            let record = TaskDefinitionRecord {
                task_definition,
                tags: job.tags.clone(),
            };
            let key = StoreKey::TaskDefinition {
                scope: scope.clone(),
                family: family.to_string(),
                revision,
            };
            txn = guarded_put(std::mem::take(&mut txn), index, &key, &record);
            record
        }));
    }
    let counter = FamilyRecord {
        last_revision: revision,
    };
    if revision != last.unwrap_or(0) {
        let family_key = StoreKey::Family {
            scope: scope.clone(),
            family: family.to_string(),
        };
        txn = match ahead {
            Some(before) => put_over(txn, &family_key, before, &counter),
            None => guarded_put(txn, index, &family_key, &counter),
        };
    }
    Ok(Batch {
        txn,
        results,
        ahead: counter,
    })
}

pub async fn register_task_definition(
    ctx: &Ctx<'_>,
    req: RegisterTaskDefinitionRequest,
) -> Result<RegisterTaskDefinitionResponse, ApiError> {
    let tags = req.tags.clone().unwrap_or_default();
    tags::validate(&tags)?;
    let scope = &ctx.scope;
    // A task definition may name only roles that exist in its account.
    for role in [&req.task_role_arn, &req.execution_role_arn]
        .into_iter()
        .flatten()
    {
        if !crate::lookup::role_in_account(&ctx.state.read(), &scope.account, role) {
            return Err(ApiError::client(format!("Role is not valid: {role}")));
        }
    }
    let family = req.family.clone().unwrap_or_default();
    let family_key = StoreKey::Family {
        scope: scope.clone(),
        family: family.clone(),
    };
    let job = Registration {
        request: req,
        tags,
        principal: ctx.principal.clone(),
        now: ctx.now,
    };
    let record = ctx
        .state
        .mutate_batched(&family_key, job, {
            let (scope, family) = (scope.clone(), family.clone());
            move |index, ahead, jobs| plan_registrations(index, ahead, &scope, &family, jobs)
        })
        .await?;
    Ok(RegisterTaskDefinitionResponse {
        task_definition: Some(record.task_definition),
        tags: Some(record.tags),
    })
}

pub async fn describe_task_definition(
    ctx: &Ctx<'_>,
    req: DescribeTaskDefinitionRequest,
) -> Result<DescribeTaskDefinitionResponse, ApiError> {
    let given = req.task_definition.unwrap_or_default();
    let r = td::parse_reference(&ctx.scope, &given).ok_or_else(unable_to_describe)?;
    let index = ctx.state.read();
    let found = find(&index, &ctx.scope, &r).ok_or_else(unable_to_describe)?;
    let with_tags = req.include.unwrap_or_default().iter().any(|i| i == "TAGS");
    Ok(DescribeTaskDefinitionResponse {
        task_definition: Some(found.value.task_definition.clone()),
        tags: with_tags.then(|| found.value.tags.clone()),
    })
}

fn status_filter(status: Option<&str>) -> &str {
    status.unwrap_or(td::ACTIVE)
}

pub async fn list_task_definitions(
    ctx: &Ctx<'_>,
    req: ListTaskDefinitionsRequest,
) -> Result<ListTaskDefinitionsResponse, ApiError> {
    let status = status_filter(req.status.as_deref());
    let limits = PageLimits {
        descending: req.sort.as_deref() == Some("DESC"),
        ..LIST_LIMITS
    };
    let pg = Page::new(req.max_results, req.next_token.as_deref(), limits)?;
    let after = pg.after.as_deref().map(parse_list_key).transpose()?;
    let index = ctx.state.read();
    let items = index
        .task_definitions_range(
            &ctx.scope,
            req.family_prefix.as_deref(),
            after,
            pg.descending,
        )
        .filter(|(_, v)| v.value.task_definition.status.as_deref() == Some(status))
        .map(|((_, f, r), v)| {
            (
                list_key(f, *r),
                &v.value.task_definition.task_definition_arn,
            )
        });
    let (items, next) = pg.take(items, |(k, _)| k.clone());
    Ok(ListTaskDefinitionsResponse {
        task_definition_arns: Some(items.into_iter().filter_map(|(_, a)| a.clone()).collect()),
        next_token: next,
    })
}

/// A page key that sorts like (family, revision): "\0" is below every character a family may hold.
fn list_key(family: &str, revision: i32) -> String {
    format!("{family}\0{revision:010}")
}

fn parse_list_key(key: &str) -> Result<(&str, i32), ApiError> {
    key.split_once('\0')
        .and_then(|(f, r)| Some((f, r.parse().ok()?)))
        .ok_or_else(|| ApiError::invalid_parameter("Invalid nextToken."))
}

pub async fn list_task_definition_families(
    ctx: &Ctx<'_>,
    req: ListTaskDefinitionFamiliesRequest,
) -> Result<ListTaskDefinitionFamiliesResponse, ApiError> {
    let status = status_filter(req.status.as_deref()).to_string();
    let index = ctx.state.read();
    let mut families: Vec<(String, bool)> = vec![];
    for ((_, f, _), v) in index.task_definitions_in(&ctx.scope) {
        if req
            .family_prefix
            .as_ref()
            .is_some_and(|p| !f.starts_with(p.as_str()))
        {
            continue;
        }
        let active = v.value.task_definition.status.as_deref() == Some(td::ACTIVE);
        match families.last_mut() {
            Some((name, any_active)) if name == f => *any_active |= active,
            _ => families.push((f.clone(), active)),
        }
    }
    // A family is ACTIVE while any of its revisions is.
    let names: Vec<String> = families
        .into_iter()
        .filter(|(_, active)| match status.as_str() {
            "ALL" => true,
            "INACTIVE" => !active,
            _ => *active,
        })
        .map(|(f, _)| f)
        .collect();
    let (names, next) = page(
        names,
        |f| f.clone(),
        req.max_results,
        req.next_token.as_deref(),
        LIST_LIMITS,
    )?;
    Ok(ListTaskDefinitionFamiliesResponse {
        families: Some(names),
        next_token: next,
    })
}

pub async fn deregister_task_definition(
    ctx: &Ctx<'_>,
    req: DeregisterTaskDefinitionRequest,
) -> Result<DeregisterTaskDefinitionResponse, ApiError> {
    let given = req.task_definition.unwrap_or_default();
    let (family, revision) =
        td::revision_reference(&ctx.scope, &given).map_err(ApiError::client)?;
    let r = td::Reference {
        family,
        revision: Some(revision),
    };
    let scope = &ctx.scope;
    let lock = StoreKey::Family {
        scope: scope.clone(),
        family: r.family.clone(),
    };
    let record = ctx
        .state
        .mutate(&lock, |index| {
            let cur = find(index, scope, &r).ok_or_else(|| ApiError::client(td::NOT_FOUND))?;
            let mut rec = cur.value.clone();
            if rec.task_definition.status.as_deref() != Some(td::ACTIVE) {
                return Ok((Txn::new(), rec));
            }
            rec.task_definition.status = Some(td::INACTIVE.into());
            rec.task_definition.deregistered_at = Some(ctx.now);
            let key = StoreKey::TaskDefinition {
                scope: scope.clone(),
                family: r.family.clone(),
                revision,
            };
            Ok((guarded_put(Txn::new(), index, &key, &rec), rec))
        })
        .await?;
    Ok(DeregisterTaskDefinitionResponse {
        task_definition: Some(record.task_definition),
    })
}

pub async fn delete_task_definitions(
    ctx: &Ctx<'_>,
    req: DeleteTaskDefinitionsRequest,
) -> Result<DeleteTaskDefinitionsResponse, ApiError> {
    let given = req.task_definitions.unwrap_or_default();
    if given.is_empty() || given.len() > MAX_DELETE {
        return Err(ApiError::invalid_parameter(format!(
            "taskDefinitions must name between 1 and {MAX_DELETE} task definitions."
        )));
    }
    let scope = &ctx.scope;
    // One batch may span families: these take turns per account and region.
    let lock = StoreKey::Family {
        scope: scope.clone(),
        family: String::new(),
    };
    let (deleted, failures) = ctx
        .state
        .mutate(&lock, |index| {
            let mut txn = Txn::new();
            let (mut deleted, mut failures) = (vec![], vec![]);
            for g in &given {
                let fail = |reason: &str| Failure {
                    arn: Some(g.clone()),
                    reason: Some(reason.into()),
                    detail: None,
                };
                let (family, revision) = match td::revision_reference(scope, g) {
                    Ok(named) => named,
                    Err(why) => {
                        failures.push(fail(&why));
                        continue;
                    }
                };
                let r = td::Reference {
                    family,
                    revision: Some(revision),
                };
                let Some(cur) = find(index, scope, &r) else {
                    failures.push(fail(td::NOT_FOUND));
                    continue;
                };
                let mut rec = cur.value.clone();
                match rec.task_definition.status.as_deref() {
                    Some(td::INACTIVE) => {
                        rec.task_definition.status = Some(td::DELETE_IN_PROGRESS.into());
                        rec.task_definition.delete_requested_at = Some(ctx.now);
                        let key = StoreKey::TaskDefinition {
                            scope: scope.clone(),
                            family: r.family.clone(),
                            revision,
                        };
                        txn = guarded_put(txn, index, &key, &rec);
                        deleted.push(rec.task_definition);
                    }
                    Some(td::DELETE_IN_PROGRESS) => deleted.push(rec.task_definition),
                    _ => failures.push(fail(
                        "The specified task definition is ACTIVE; deregister it before deleting it",
                    )),
                }
            }
            Ok((txn, (deleted, failures)))
        })
        .await?;
    Ok(DeleteTaskDefinitionsResponse {
        task_definitions: Some(deleted),
        failures: Some(failures),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::State;
    use berth_store::{EmbeddedStore, KeyValue, Snapshot, Store, StoreError, TxnFuture};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// The embedded store, except that the first transaction's outcome is
    /// held back (it commits, but its writer hears nothing) until released.
    struct HoldFirst {
        inner: EmbeddedStore,
        release: Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
        submitted: tokio::sync::watch::Sender<usize>,
    }

    #[async_trait::async_trait]
    impl Store for HoldFirst {
        async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
            self.inner.get(key).await
        }
        async fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64), StoreError> {
            self.inner.range(prefix).await
        }
        async fn snapshot_and_watch(&self, prefix: &str) -> Result<Snapshot, StoreError> {
            self.inner.snapshot_and_watch(prefix).await
        }
        fn submit(&self, txn: Txn) -> TxnFuture {
            let outcome = self.inner.submit(txn);
            let hold = self.release.lock().unwrap().take();
            self.submitted.send_modify(|n| *n += 1);
            Box::pin(async move {
                if let Some(hold) = hold {
                    let _ = hold.await;
                }
                outcome.await
            })
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<HoldFirst>,
        state: Arc<State>,
        release: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
        /// What each plan was given as `ahead`, in order.
        seen: Arc<Mutex<Vec<Option<i32>>>>,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let (release, hold) = tokio::sync::oneshot::channel();
        let store = Arc::new(HoldFirst {
            inner: EmbeddedStore::open(dir.path()).unwrap(),
            release: Mutex::new(Some(hold)),
            submitted: tokio::sync::watch::channel(0).0,
        });
        let state = State::open(store.clone()).await.unwrap();
        Fixture {
            _dir: dir,
            store,
            state,
            release: Mutex::new(Some(release)),
            seen: Default::default(),
        }
    }

    fn scope() -> Scope {
        Scope::new("111122223333", "us-east-1")
    }

    /// One RegisterTaskDefinition of family "web", through the real planner.
    fn register(f: &Fixture) -> tokio::task::JoinHandle<Result<i32, ApiError>> {
        let (state, seen) = (f.state.clone(), f.seen.clone());
        tokio::spawn(async move {
            let request: RegisterTaskDefinitionRequest =
                serde_json::from_value(serde_json::json!({
                    "family": "web",
                    "containerDefinitions": [{"name": "app", "image": "nginx", "memory": 64}],
                }))
                .unwrap();
            let job = Registration {
                request,
                tags: vec![],
                principal: "arn:aws:iam::111122223333:root".into(),
                now: 0.0,
            };
            let key = StoreKey::Family {
                scope: scope(),
                family: "web".into(),
            };
            let record = state
                .mutate_batched(
                    &key,
                    job,
                    move |index, ahead: Option<&FamilyRecord>, jobs| {
                        seen.lock().unwrap().push(ahead.map(|a| a.last_revision));
                        plan_registrations(index, ahead, &scope(), "web", jobs)
                    },
                )
                .await?;
            Ok(record.task_definition.revision.unwrap_or_default())
        })
    }

    async fn submitted(f: &Fixture, n: usize) {
        let mut rx = f.store.submitted.subscribe();
        tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| *s >= n))
            .await
            .expect("the transaction was never submitted")
            .unwrap();
    }

    fn last_revision(f: &Fixture) -> Option<i32> {
        let index = f.state.read();
        let family = index.families.get(&(scope(), "web".to_string()));
        family.map(|f| f.value.last_revision)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_commits_behind_one_whose_outcome_is_pending() {
        let f = fixture().await;
        let first = register(&f);
        submitted(&f, 1).await;
        // The first writer has not heard back, yet the next one is not kept waiting.
        let second = tokio::time::timeout(Duration::from_secs(5), register(&f))
            .await
            .expect("the second registration waited for the first one's outcome");
        assert_eq!(second.unwrap().unwrap(), 2);
        assert_eq!(*f.seen.lock().unwrap(), [None, Some(1)]);
        f.release.lock().unwrap().take().unwrap().send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(last_revision(&f), Some(2));
    }

    async fn queued(f: &Fixture, n: usize) {
        let waited = tokio::time::timeout(Duration::from_secs(5), async {
            while f.state.queued_jobs() < n {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        waited.await.expect("the registration never queued");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_is_answered_when_the_writer_whose_turn_it_was_goes_away() {
        let f = fixture().await;
        let key = StoreKey::Family {
            scope: scope(),
            family: "web".into(),
        };
        // Hold the family's turn so that both registrations queue behind it.
        let turn = f.state.owned_turn(&key).await;
        let leader = register(&f);
        queued(&f, 1).await;
        let other = register(&f);
        queued(&f, 2).await;
        drop(turn);
        // The leader planned both into one transaction; then its client hangs up.
        submitted(&f, 1).await;
        leader.abort();
        f.release.lock().unwrap().take().unwrap().send(()).unwrap();
        let other = tokio::time::timeout(Duration::from_secs(5), other)
            .await
            .expect("the other registration was never answered");
        assert_eq!(other.unwrap().unwrap(), 2);
        assert_eq!(*f.seen.lock().unwrap(), [None]);
        // The leader's registration stands, as in ECS when a client goes away.
        assert_eq!(last_revision(&f), Some(2));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_built_on_a_counter_someone_else_moved_is_planned_again() {
        let f = fixture().await;
        let first = register(&f);
        submitted(&f, 1).await;
        // Another server moves the family's counter behind this one's back.
        let key = StoreKey::Family {
            scope: scope(),
            family: "web".into(),
        }
        .encode();
        let moved = serde_json::to_vec(&FamilyRecord { last_revision: 99 }).unwrap();
        f.store.inner.txn(Txn::new().put(key, moved)).await.unwrap();
        let second = tokio::time::timeout(Duration::from_secs(5), register(&f))
            .await
            .expect("the second registration never finished");
        // Its guard on revision 1 failed; planned again from the view, it takes 100.
        assert_eq!(second.unwrap().unwrap(), 100);
        assert_eq!(*f.seen.lock().unwrap(), [None, Some(1), None]);
        f.release.lock().unwrap().take().unwrap().send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(last_revision(&f), Some(100));
        let index = f.state.read();
        let revisions: Vec<i32> = index
            .task_definitions_range(&scope(), Some("web"), None, false)
            .map(|((_, _, r), _)| *r)
            .collect();
        assert_eq!(revisions, [1, 100]);
    }
}
