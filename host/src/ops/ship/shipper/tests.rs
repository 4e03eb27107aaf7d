//! The shipper against an in-memory object store wrapped to count requests and fail on demand,
//! over a real spool (native engine) in a temporary data directory.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use edgestore::sample::MetricGenerator;
use edgestore::spool::SegmentState;
use edgestore::{SpoolConfig, TimeRange};
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt as _, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use super::*;
use crate::client::{Engine, Store, StoreConfig};

/// InMemory, counting every request, failing writes with a 503 while `fail_writes` is set.
#[derive(Debug, Default)]
struct Flaky {
    inner: InMemory,
    requests: AtomicU64,
    writes: AtomicU64,
    fail_writes: AtomicBool,
    /// Answer 403 for a missing key, as S3 does to credentials that cannot list the bucket.
    deny_missing: AtomicBool,
}

impl std::fmt::Display for Flaky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Flaky")
    }
}

impl Flaky {
    fn count(&self) {
        self.requests.fetch_add(1, Ordering::SeqCst);
    }

    fn write(&self) -> object_store::Result<()> {
        self.count();
        self.writes.fetch_add(1, Ordering::SeqCst);
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(object_store::Error::Generic {
                store: "S3",
                source: "Server returned non-2xx status code: 503 Service Unavailable: ".into(),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ObjectStore for Flaky {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.write()?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.write()?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.count();
        match self.inner.get_opts(location, options).await {
            Err(object_store::Error::NotFound { path, .. })
                if self.deny_missing.load(Ordering::SeqCst) =>
            {
                Err(object_store::Error::PermissionDenied {
                    path,
                    source: "Server returned non-2xx status code: 403 Forbidden: ".into(),
                })
            }
            other => other,
        }
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.count();
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.count();
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        self.count();
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.count();
        self.inner.copy_opts(from, to, options).await
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    store: Store,
    spool: AsyncSpool,
    objects: Arc<Flaky>,
    shipper: Shipper,
    generator: MetricGenerator,
}

const TARGET: &str = "s3://bucket/edge";

fn options(data: &Path, breaker: BreakerConfig) -> ShipperOptions {
    ShipperOptions {
        config: ShipConfig {
            target: Some(TARGET.into()),
            ..ShipConfig::default()
        },
        data_dir: data.to_path_buf(),
        spool_dir: "metrics".into(),
        breaker,
        report: false,
    }
}

async fn fixture_with(breaker: BreakerConfig) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_path_buf();
    let store = Store::open(StoreConfig::new(Engine::Native, &data))
        .await
        .unwrap();
    let spool = store
        .spool("metrics", SpoolConfig::new("agent"))
        .await
        .unwrap();
    let objects = Arc::new(Flaky::default());
    let target = Target::from_store(objects.clone(), TARGET).unwrap();
    let shipper = Shipper::with_target(
        target,
        spool.clone(),
        store.metrics().clone(),
        options(&data, breaker),
    )
    .unwrap();
    Fixture {
        _tmp: tmp,
        data,
        store,
        spool,
        objects,
        shipper,
        generator: MetricGenerator::new(11, 1_700_000_000_000),
    }
}

async fn fixture() -> Fixture {
    fixture_with(BreakerConfig::default()).await
}

impl Fixture {
    /// `n` finished segments of 20 rows each; their names.
    async fn segments(&mut self, n: usize) -> Vec<String> {
        let before: Vec<String> = self.pending_names();
        for _ in 0..n {
            self.spool.put(self.generator.batch(20)).await.unwrap();
            self.spool.flush().await.unwrap();
        }
        self.pending_names()
            .into_iter()
            .filter(|n| !before.contains(n))
            .collect()
    }

    fn spool_dir(&self) -> PathBuf {
        self.data.join("metrics")
    }

    fn pending_names(&self) -> Vec<String> {
        status::list_pending(&self.spool_dir())
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect()
    }

    fn key(&self, name: &str) -> ObjectPath {
        let rendered = KeyTemplate::default().render(name).unwrap();
        ObjectPath::from(format!("edge/{rendered}"))
    }

    async fn object(&self, name: &str) -> Option<Bytes> {
        match self.objects.inner.get(&self.key(name)).await {
            Ok(r) => Some(r.bytes().await.unwrap()),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("{e}"),
        }
    }

    async fn states(&self) -> Vec<(String, SegmentState)> {
        self.spool
            .segments(TimeRange::all())
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.name, s.state))
            .collect()
    }

    fn requests(&self) -> u64 {
        self.objects.requests.load(Ordering::SeqCst)
    }

    fn writes(&self) -> u64 {
        self.objects.writes.load(Ordering::SeqCst)
    }

    fn metrics(&self) -> String {
        self.store.metrics().gather_text().unwrap()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn ships_pending_segments_once_then_acknowledges_them() {
    let mut f = fixture().await;
    let names = f.segments(3).await;
    assert_eq!(names.len(), 3);
    let local: Vec<Vec<u8>> = names
        .iter()
        .map(|n| std::fs::read(f.spool_dir().join(n)).unwrap())
        .collect();

    let report = f.shipper.ship_once().await.unwrap();
    assert_eq!(
        (report.segments, report.already_there, report.failed),
        (3, 0, 0),
        "{report:?}"
    );
    assert_eq!(
        report.bytes,
        local.iter().map(|b| b.len() as u64).sum::<u64>()
    );
    assert!(report.summary().starts_with(&format!(
        "shipped 3 segments ({} bytes) to s3://bucket/edge",
        report.bytes
    )));
    for (name, bytes) in names.iter().zip(&local) {
        assert_eq!(
            f.object(name).await.unwrap(),
            Bytes::from(bytes.clone()),
            "{name}"
        );
        assert!(f.spool_dir().join("uploaded").join(name).is_file());
    }
    assert!(f
        .states()
        .await
        .iter()
        .all(|(_, s)| *s == SegmentState::Uploaded));
    assert!(f.pending_names().is_empty());
    let text = f.metrics();
    for want in [
        "edgestore_ship_segments_total 3".to_owned(),
        format!("edgestore_ship_bytes_total {}", report.bytes),
        "edgestore_ship_lag_seconds 0".to_owned(),
    ] {
        assert!(text.contains(&want), "{want} in\n{text}");
    }
    // One round, nothing left: the next one sends nothing.
    let requests = f.requests();
    let again = f.shipper.ship_once().await.unwrap();
    assert_eq!(again.segments, 0);
    assert_eq!(f.requests(), requests);
}

#[tokio::test(flavor = "current_thread")]
async fn nothing_pending_means_no_request() {
    let f = fixture().await;
    for _ in 0..3 {
        let report = f.shipper.ship_once().await.unwrap();
        assert_eq!(
            report,
            RoundReport {
                target: TARGET.into(),
                ..RoundReport::default()
            }
        );
    }
    assert_eq!(f.requests(), 0);
    assert!(f.shipper.health(Duration::from_secs(1)).await.is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn an_identical_object_is_adopted_without_uploading() {
    let mut f = fixture().await;
    let names = f.segments(1).await;
    let bytes = std::fs::read(f.spool_dir().join(&names[0])).unwrap();
    // As a run that stopped between its upload and its ack left it (no metadata even).
    f.objects
        .inner
        .put(&f.key(&names[0]), bytes.clone().into())
        .await
        .unwrap();
    let report = f.shipper.ship_once().await.unwrap();
    assert_eq!(
        (report.segments, report.already_there),
        (1, 1),
        "{report:?}"
    );
    assert_eq!(f.writes(), 0, "nothing uploaded");
    assert_eq!(
        f.states().await,
        vec![(names[0].clone(), SegmentState::Uploaded)]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_403_for_a_missing_key_still_ships_with_a_conditional_create() {
    let mut f = fixture().await;
    f.objects.deny_missing.store(true, Ordering::SeqCst);
    let names = f.segments(1).await;
    let report = f.shipper.ship_once().await.unwrap();
    assert_eq!((report.segments, report.failed), (1, 0), "{report:?}");
    assert!(f.object(&names[0]).await.is_some());
    // Shipped again (as after a crash before the ack): the existing object answers the HEAD.
    let again = f.shipper.ship_once().await.unwrap();
    assert_eq!(again.segments, 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_different_object_is_never_overwritten() {
    let mut f = fixture().await;
    let names = f.segments(2).await;
    let key = f.key(&names[0]);
    f.objects
        .inner
        .put(&key, Bytes::from_static(b"someone else's bytes").into())
        .await
        .unwrap();
    let report = f.shipper.ship_once().await.unwrap();
    assert_eq!((report.segments, report.failed), (1, 1), "{report:?}");
    assert!(report.permanent && !report.troubled, "{report:?}");
    assert!(report.failures[0].contains(key.as_ref()), "{report:?}");
    assert_eq!(
        f.objects
            .inner
            .get(&key)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        Bytes::from_static(b"someone else's bytes")
    );
    assert_eq!(f.pending_names(), vec![names[0].clone()]);
    let health = f.shipper.health(Duration::from_secs(3600)).await;
    assert!(
        health.len() == 1
            && health[0].contains("shipping to s3://bucket/edge fails")
            && health[0].contains(key.as_ref()),
        "{health:?}"
    );
    let recorded = status::read_failure(&f.data).unwrap();
    assert_eq!(
        (recorded.kind.as_str(), recorded.permanent),
        ("conflict", true)
    );
    assert!(f
        .metrics()
        .contains("edgestore_ship_failures_total{kind=\"conflict\"} 1"));

    // The conflicting object goes: the segment ships, health and the status file clear.
    f.objects.inner.delete(&key).await.unwrap();
    let report = f.shipper.ship_once().await.unwrap();
    assert_eq!((report.segments, report.failed), (1, 0), "{report:?}");
    assert!(f.shipper.health(Duration::from_secs(3600)).await.is_empty());
    assert_eq!(status::read_failure(&f.data), None);
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_upload_leaves_the_segment_pending() {
    let mut f = fixture().await;
    let names = f.segments(3).await;
    f.objects.fail_writes.store(true, Ordering::SeqCst);
    let report = f.shipper.ship_once().await.unwrap();
    assert_eq!(report.segments, 0, "{report:?}");
    assert!(
        report.failed >= 1 && report.failed + report.skipped == 3,
        "{report:?}"
    );
    assert!(report.troubled && !report.permanent, "{report:?}");
    // The target's failure is the same for every segment tried: said once.
    assert_eq!(report.failures.len(), 1, "{report:?}");
    assert_eq!(f.pending_names(), names);
    assert!(f
        .states()
        .await
        .iter()
        .all(|(_, s)| *s == SegmentState::Pending));
    assert!(f
        .metrics()
        .contains("edgestore_ship_failures_total{kind=\"transient\"}"));
    // Transient failures are not a health failure by themselves (lag is).
    assert!(f.shipper.health(Duration::from_secs(3600)).await.is_empty());
    let lagging = f.shipper.health(Duration::ZERO).await;
    assert!(
        lagging.iter().any(|r| r.contains("shipping lag")),
        "{lagging:?}"
    );

    f.objects.fail_writes.store(false, Ordering::SeqCst);
    let report = f.shipper.ship_once().await.unwrap();
    assert_eq!(report.segments, 3, "{report:?}");
    assert!(f.pending_names().is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn the_breaker_stops_requests_to_a_failing_target() {
    let mut f = fixture_with(BreakerConfig {
        failure_threshold: 2,
        cool_down: Duration::from_secs(3600),
    })
    .await;
    f.segments(4).await;
    f.objects.fail_writes.store(true, Ordering::SeqCst);
    let mut rounds = 0;
    let report = loop {
        let r = f.shipper.ship_once().await.unwrap();
        rounds += 1;
        if r.retry_in_ms.is_some() || rounds > 10 {
            break r;
        }
    };
    assert!(
        report.retry_in_ms.is_some() && report.troubled,
        "{report:?}"
    );
    // Open: further rounds send nothing at all.
    let requests = f.requests();
    let r = f.shipper.ship_once().await.unwrap();
    assert_eq!((r.skipped, r.failed), (4, 0), "{r:?}");
    assert_eq!(f.requests(), requests);
    // Backoff between rounds: at least until the breaker's probe.
    let mut troubled = 0;
    let delay = f.shipper.next_delay(&Ok(r), &mut troubled);
    assert!(delay >= Duration::from_secs(3000), "{delay:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn after_the_probe_succeeds_shipping_resumes_at_the_usual_pace() {
    let mut f = fixture_with(BreakerConfig {
        failure_threshold: 1,
        cool_down: Duration::from_millis(100),
    })
    .await;
    f.segments(3).await;
    f.objects.fail_writes.store(true, Ordering::SeqCst);
    let mut troubled = 0;
    let r = f.shipper.ship_once().await.unwrap();
    assert!(r.troubled, "{r:?}");
    let first = f.shipper.next_delay(&Ok(r), &mut troubled);
    assert!(first <= Duration::from_secs(10), "{first:?}");
    f.objects.fail_writes.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await;
    // The probe goes alone (the others wait for it), succeeds, and closes the breaker.
    let r = f.shipper.ship_once().await.unwrap();
    assert!(r.segments >= 1, "{r:?}");
    let next = f.shipper.next_delay(&Ok(r), &mut troubled);
    assert_eq!(next, Duration::from_secs(10), "the configured interval");
    assert_eq!(troubled, 0);
    let r = f.shipper.ship_once().await.unwrap();
    assert_eq!(r.failed + r.skipped, 0, "{r:?}");
    assert!(f.pending_names().is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn quarantined_and_corrupt_segments_are_never_shipped() {
    let mut f = fixture().await;
    let names = f.segments(3).await;
    let dir = f.spool_dir();
    // One quarantined already (as a reader or `spool verify` leaves it).
    std::fs::create_dir_all(dir.join("quarantine")).unwrap();
    for file in [names[0].clone(), format!("{}.sum", names[0])] {
        std::fs::rename(dir.join(&file), dir.join("quarantine").join(&file)).unwrap();
    }
    // One damaged on disk: same length, other bytes.
    let damaged = dir.join(&names[1]);
    let mut bytes = std::fs::read(&damaged).unwrap();
    for b in bytes.iter_mut() {
        *b = b.wrapping_add(1);
    }
    std::fs::write(&damaged, &bytes).unwrap();

    let report = f.shipper.ship_once().await.unwrap();
    assert_eq!((report.segments, report.quarantined), (1, 1), "{report:?}");
    assert!(f.object(&names[0]).await.is_none());
    assert!(f.object(&names[1]).await.is_none());
    assert!(f.object(&names[2]).await.is_some());
    assert!(
        dir.join("quarantine").join(&names[1]).is_file(),
        "moved by verify"
    );
    assert!(f.pending_names().is_empty());
    assert!(f
        .metrics()
        .contains("edgestore_ship_failures_total{kind=\"corrupt\"} 1"));
}

#[tokio::test(flavor = "current_thread")]
async fn run_ships_then_stops_on_its_signal() {
    let mut f = fixture().await;
    f.segments(2).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shipper = f.shipper.clone();
    let task = tokio::spawn(async move {
        shipper
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    for _ in 0..200 {
        if f.pending_names().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(f.pending_names().is_empty(), "the first round runs at once");
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    // Stopped: a new segment stays pending.
    f.segments(1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(f.pending_names().len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn finished_audit_files_are_shipped_once_and_kept() {
    let f = fixture().await;
    // An audit log rotated twice: two finished files and the one being written.
    let log = crate::audit::AuditLog::open(&f.data, 4096, "native", "test").unwrap();
    let event = crate::audit::AuditEvent {
        op: "spool.put".into(),
        target: "agent".into(),
        ..crate::audit::AuditEvent::default()
    };
    while crate::audit::finished_files(&f.data).unwrap().len() < 2 {
        log.append(&event).unwrap();
    }
    let finished = crate::audit::finished_files(&f.data).unwrap();
    let report = f.shipper.ship_once().await.unwrap();
    assert!(report.failures.is_empty(), "{report:?}");
    for path in &finished {
        let name = path.file_name().unwrap().to_str().unwrap();
        let key = ObjectPath::from(format!("edge/audit/agent/{name}"));
        let object = f
            .objects
            .inner
            .get(&key)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(object.as_ref(), std::fs::read(path).unwrap().as_slice());
        assert!(path.exists(), "kept locally for verification");
    }
    // The file still being written is not shipped; nothing is sent again next round.
    let listed = f
        .objects
        .inner
        .list_with_delimiter(Some(&ObjectPath::from("edge/audit/agent")))
        .await
        .unwrap();
    assert_eq!(listed.objects.len(), finished.len());
    let requests = f.requests();
    f.shipper.ship_once().await.unwrap();
    assert_eq!(f.requests(), requests);
    assert!(crate::audit::verify(&f.data, &[]).unwrap().ok());
}
