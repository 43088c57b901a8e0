//! Where the lock lives and the API calls on it. Every write is conditional: a create fails with
//! 409 when the object exists, a replace carries the resourceVersion that was read and fails with
//! 409 when someone wrote since, a Lease is deleted with resourceVersion and UID preconditions.
//! Such a refusal is [`WriteError::Lost`]: the caller looks again and decides again.

use std::time::Instant;

use kube_kit::k8s_openapi::api::coordination::v1::Lease;
use kube_kit::k8s_openapi::api::core::v1::ConfigMap;
use kube_kit::kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube_kit::kube::Client;
use module_kit::Failure;

use crate::record::{self, Record};

/// The kind of object holding the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `coordination.k8s.io/v1` Lease (Kubernetes 1.14 and later).
    Lease,
    /// A ConfigMap with the record in an annotation (servers without Leases).
    ConfigMap,
}

impl Backend {
    /// `Lease` or `ConfigMap`.
    pub fn kind(self) -> &'static str {
        match self {
            Backend::Lease => "Lease",
            Backend::ConfigMap => "ConfigMap",
        }
    }

    fn resource(self) -> &'static str {
        match self {
            Backend::Lease => "lease",
            Backend::ConfigMap => "configmap",
        }
    }
}

/// The object read.
#[derive(Debug, Clone)]
pub enum Object {
    Lease(Box<Lease>),
    ConfigMap(Box<ConfigMap>),
}

/// The lock as found: its record and the object it was read from.
#[derive(Debug, Clone)]
pub struct Found {
    pub record: Record,
    pub object: Object,
}

/// One look: which kind of object holds (or would hold) the lock, and what it holds.
#[derive(Debug, Clone)]
pub struct Seen {
    pub backend: Backend,
    pub found: Option<Found>,
    /// `lease kube-system/kup-upgrade`.
    pub what: String,
}

impl Seen {
    pub fn record(&self) -> Option<&Record> {
        self.found.as_ref().map(|f| &f.record)
    }
}

/// A write that did not happen.
#[derive(Debug)]
pub enum WriteError {
    /// Someone else wrote (or deleted) the object since it was read.
    Lost,
    /// Any other error.
    Failed(Failure),
}

pub struct Store {
    client: Client,
    leases: Api<Lease>,
    config_maps: Api<ConfigMap>,
    namespace: String,
    name: String,
    server: String,
    deadline: Instant,
    /// Whether the server serves coordination.k8s.io/v1 leases (asked once).
    leases_served: Option<bool>,
}

impl Store {
    pub fn new(api: &kube_kit::Api, namespace: &str, name: &str, deadline: Instant) -> Store {
        Store {
            client: api.client.clone(),
            leases: Api::namespaced(api.client.clone(), namespace),
            config_maps: Api::namespaced(api.client.clone(), namespace),
            namespace: namespace.to_string(),
            name: name.to_string(),
            server: api.server.clone(),
            deadline,
            leases_served: None,
        }
    }

    fn what(&self, backend: Backend) -> String {
        format!("{} {}/{}", backend.resource(), self.namespace, self.name)
    }

    /// Discovery, as kubectl does it: `GET /apis/coordination.k8s.io/v1` lists `leases` from 1.14.
    async fn leases_served(&mut self) -> Result<bool, Failure> {
        if let Some(served) = self.leases_served {
            return Ok(served);
        }
        let client = &self.client;
        let served = match kube_kit::retry(self.deadline, || {
            client.list_api_group_resources("coordination.k8s.io/v1")
        })
        .await
        {
            Ok(list) => list.resources.iter().any(|r| r.name == "leases"),
            Err(e) if kube_kit::status(&e) == Some(404) => false,
            Err(e) => {
                return Err(kube_kit::api_failure(
                    format!("cannot discover coordination.k8s.io/v1 on {}", self.server),
                    &e,
                ))
            }
        };
        self.leases_served = Some(served);
        Ok(served)
    }

    /// Reads the lock. A ConfigMap holding a lock wins (it was taken before the server served
    /// Leases, say mid-upgrade from 1.13 to 1.14, and stays where it is until released); else the
    /// Lease where Leases are served; else the ConfigMap.
    pub async fn look(&mut self) -> Result<Seen, Failure> {
        let cm_what = self.what(Backend::ConfigMap);
        let config_maps = &self.config_maps;
        let cm = kube_kit::retry(self.deadline, || config_maps.get_opt(&self.name))
            .await
            .map_err(|e| kube_kit::api_failure(format!("cannot read {cm_what} on {}", self.server), &e))?;
        let cm = match cm {
            Some(cm) => {
                let record = record::from_config_map(&cm).map_err(|e| {
                    Failure::new(format!(
                        "{cm_what} has an unreadable {} annotation ({e}); if no upgrade is running, delete it \
                         (kubectl -n {} delete configmap {})",
                        record::LOCK_ANNOTATION,
                        self.namespace,
                        self.name
                    ))
                })?;
                Some(Found {
                    record,
                    object: Object::ConfigMap(Box::new(cm)),
                })
            }
            None => None,
        };
        let cm_held = cm.as_ref().is_some_and(|f| f.record.held());
        if !cm_held && self.leases_served().await? {
            let what = self.what(Backend::Lease);
            let leases = &self.leases;
            let lease = kube_kit::retry(self.deadline, || leases.get_opt(&self.name))
                .await
                .map_err(|e| kube_kit::api_failure(format!("cannot read {what} on {}", self.server), &e))?;
            return Ok(Seen {
                backend: Backend::Lease,
                found: lease.map(|l| Found {
                    record: record::from_lease(&l),
                    object: Object::Lease(Box::new(l)),
                }),
                what,
            });
        }
        Ok(Seen {
            backend: Backend::ConfigMap,
            found: cm,
            what: cm_what,
        })
    }

    fn lost_or_failed(&self, what: String, e: &kube_kit::kube::Error, lost: &[u16]) -> WriteError {
        match kube_kit::status(e) {
            Some(code) if lost.contains(&code) => WriteError::Lost,
            _ => WriteError::Failed(kube_kit::api_failure(format!("{what} on {}", self.server), e)),
        }
    }

    /// Creates the object holding `r` (where nothing was found), or replaces the one found,
    /// with the resourceVersion it was read with.
    pub async fn write(&self, seen: &Seen, r: &Record) -> Result<(), WriteError> {
        let post = PostParams::default();
        let (ns, name) = (self.namespace.as_str(), self.name.as_str());
        let result = match (&seen.found, seen.backend) {
            (None, Backend::Lease) => {
                let lease = record::to_lease(None, ns, name, r);
                kube_kit::retry(self.deadline, || self.leases.create(&post, &lease))
                    .await
                    .map(drop)
            }
            (None, Backend::ConfigMap) => {
                let cm = record::to_config_map(None, ns, name, r);
                kube_kit::retry(self.deadline, || self.config_maps.create(&post, &cm))
                    .await
                    .map(drop)
            }
            (Some(found), _) => match &found.object {
                Object::Lease(l) => {
                    let lease = record::to_lease(Some(l), ns, name, r);
                    kube_kit::retry(self.deadline, || self.leases.replace(name, &post, &lease))
                        .await
                        .map(drop)
                }
                Object::ConfigMap(cm) => {
                    let cm = record::to_config_map(Some(cm), ns, name, r);
                    kube_kit::retry(self.deadline, || self.config_maps.replace(name, &post, &cm))
                        .await
                        .map(drop)
                }
            },
        };
        result.map_err(|e| match &seen.found {
            // 409 AlreadyExists: someone created it first.
            None => self.lost_or_failed(format!("cannot create {}", seen.what), &e, &[409]),
            // 409 Conflict: written since it was read; 404: deleted since.
            Some(_) => self.lost_or_failed(format!("cannot write {}", seen.what), &e, &[409, 404]),
        })
    }

    /// Releases the lock found: a Lease is deleted if it is still the one read (resourceVersion
    /// and UID preconditions). A ConfigMap is not deleted but freed (its record's holder emptied)
    /// with a resourceVersion-checked write, because servers before 1.14 ignore a DELETE's
    /// resourceVersion precondition: a delete there could remove a lock someone else just took.
    pub async fn release(
        &self,
        seen: &Seen,
        now: kube_kit::k8s_openapi::jiff::Timestamp,
    ) -> Result<(), WriteError> {
        let Some(found) = &seen.found else {
            return Ok(());
        };
        match &found.object {
            Object::Lease(l) => {
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        resource_version: l.metadata.resource_version.clone(),
                        uid: l.metadata.uid.clone(),
                    }),
                    ..DeleteParams::default()
                };
                match kube_kit::retry(self.deadline, || self.leases.delete(&self.name, &params)).await {
                    Ok(_) => Ok(()),
                    // Gone already (a retried delete that had gone through, or someone else's).
                    Err(e) if kube_kit::status(&e) == Some(404) => Ok(()),
                    Err(e) => Err(self.lost_or_failed(format!("cannot delete {}", seen.what), &e, &[409])),
                }
            }
            Object::ConfigMap(_) => {
                let free = Record {
                    holder: String::new(),
                    host: None,
                    duration: found.record.duration,
                    acquired: None,
                    renewed: Some(now),
                    transitions: found.record.transitions,
                };
                self.write(seen, &free).await
            }
        }
    }
}
