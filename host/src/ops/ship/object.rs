//! Exactly one object per segment, verified: the decision made for every segment before and
//! after it is sent.
//!
//! 1. Look at the key (a HEAD). An object of the same size whose SHA-256 (our
//!    `x-amz-meta-sha256`, or, where the target keeps no metadata, the object's bytes read
//!    back) equals the segment's is the segment: shipped already (an earlier run uploaded it
//!    and stopped before acknowledging). Any other object is a conflict: never overwritten.
//! 2. Otherwise upload it: one PUT up to `ship.partSize`, multipart above, with the server
//!    checking every body against its `x-amz-checksum-sha256`; the PUT is a conditional create
//!    (`If-None-Match: *`) where the target takes one, so a concurrent writer of the same key
//!    cannot be overwritten either. A create refused because the key exists goes back to 1
//!    (a retried PUT whose first attempt landed is the usual cause). A multipart upload
//!    completes without that condition (the client offers none): the HEAD before it is its
//!    guard, enough while one owner ships a data directory and keys carry its identifier.
//! 3. Confirm: the object is looked at again and must be the segment (size and SHA-256);
//!    `file://` objects are fsynced first. Only then may the caller acknowledge the segment.

use bytes::Bytes;
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, ObjectStoreExt as _, PutMode,
    PutMultipartOptions, PutOptions, PutPayload,
};

use super::error::{cause_text, classify, conditional_unsupported, FailureKind, ShipError};
use super::target::Target;
use super::throttle::Throttle;

/// The user-metadata name of a segment's SHA-256 (`x-amz-meta-sha256` on S3).
pub const SHA256_METADATA: &str = "sha256";

/// A finished segment's bytes, read once, and their SHA-256.
#[derive(Debug, Clone)]
pub struct Segment {
    /// The segment's file name.
    pub name: String,
    /// Its bytes.
    pub bytes: Bytes,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
}

impl Segment {
    /// Hash `bytes`.
    pub fn new(name: impl Into<String>, bytes: impl Into<Bytes>) -> Segment {
        let bytes = bytes.into();
        let sha256 = crate::digest::sha256_hex(&bytes);
        Segment {
            name: name.into(),
            bytes,
            sha256,
        }
    }

    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
}

/// How a segment came to be on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shipped {
    /// This call uploaded it.
    Uploaded,
    /// The object was already there with the same bytes.
    AlreadyThere,
}

/// What a key holds, compared with a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Existing {
    Absent,
    Same,
    Different(String),
}

/// How segments are sent.
#[derive(Debug, Clone, Copy)]
pub struct SendOptions<'a> {
    /// Bodies above this many bytes go as a multipart upload in parts of this size.
    pub part_size: usize,
    /// The bandwidth cap, if any.
    pub throttle: Option<&'a Throttle>,
}

fn target_error(
    target: &Target,
    op: &'static str,
    key: &Path,
    kind: FailureKind,
    e: &object_store::Error,
) -> ShipError {
    ShipError::Target {
        kind,
        target: target.name().to_owned(),
        op,
        key: key.to_string(),
        message: cause_text(e),
    }
}

/// Put `segment` under `key` unless it is there already; see the module doc. `Ok` means the
/// target holds exactly the segment's bytes under `key`.
pub async fn ship(
    target: &Target,
    key: &str,
    segment: &Segment,
    options: SendOptions<'_>,
) -> Result<Shipped, ShipError> {
    let path = Path::parse(key).map_err(|e| ShipError::Target {
        kind: FailureKind::Config,
        target: target.name().to_owned(),
        op: "key",
        key: key.to_owned(),
        message: e.to_string(),
    })?;
    let conflict = |detail: String| ShipError::Conflict {
        target: target.name().to_owned(),
        key: key.to_owned(),
        segment: segment.name.clone(),
        detail,
    };
    let before = match compare(target, &path, segment).await {
        // S3 answers 403 rather than 404 for a missing key to credentials that may write but
        // not list the bucket: with a conditional create guarding the PUT, go on to it (a real
        // credentials problem fails the PUT the same way).
        Err(e) if e.kind() == FailureKind::Denied && target.conditional() => Existing::Absent,
        other => other?,
    };
    match before {
        Existing::Same => return Ok(Shipped::AlreadyThere),
        Existing::Different(detail) => return Err(conflict(detail)),
        Existing::Absent => {}
    }
    match upload(target, &path, segment, options).await? {
        Created::Yes => {}
        Created::KeyTaken => {
            return match compare(target, &path, segment).await? {
                Existing::Same => Ok(Shipped::AlreadyThere),
                Existing::Different(detail) => Err(conflict(detail)),
                Existing::Absent => Err(ShipError::Target {
                    kind: FailureKind::Transient,
                    target: target.name().to_owned(),
                    op: "PUT",
                    key: key.to_owned(),
                    message: "refused as existing, but no object is there".into(),
                }),
            };
        }
    }
    target.sync(key).await.map_err(|e| ShipError::Target {
        kind: FailureKind::Transient,
        target: target.name().to_owned(),
        op: "sync",
        key: key.to_owned(),
        message: e.to_string(),
    })?;
    match compare(target, &path, segment).await? {
        Existing::Same => Ok(Shipped::Uploaded),
        Existing::Different(detail) => Err(conflict(format!("after the upload: {detail}"))),
        Existing::Absent => Err(ShipError::Target {
            kind: FailureKind::Transient,
            target: target.name().to_owned(),
            op: "HEAD",
            key: key.to_owned(),
            message: "the uploaded object is not there".into(),
        }),
    }
}

/// What `key` holds: nothing, the segment, or something else.
async fn compare(target: &Target, key: &Path, segment: &Segment) -> Result<Existing, ShipError> {
    let head = target
        .store()
        .get_opts(
            key,
            GetOptions {
                head: true,
                ..GetOptions::default()
            },
        )
        .await;
    let found = match head {
        Ok(found) => found,
        Err(object_store::Error::NotFound { .. }) => return Ok(Existing::Absent),
        Err(e) => return Err(target_error(target, "HEAD", key, read_kind(&e), &e)),
    };
    if found.meta.size != segment.len() {
        return Ok(Existing::Different(format!(
            "{} bytes, the segment has {}",
            found.meta.size,
            segment.len()
        )));
    }
    if target.keeps_metadata() {
        let recorded = found
            .attributes
            .get(&Attribute::Metadata(SHA256_METADATA.into()))
            .map(|v| v.as_ref().to_ascii_lowercase());
        match recorded {
            Some(sha) if sha == segment.sha256 => return Ok(Existing::Same),
            Some(sha) => {
                return Ok(Existing::Different(format!(
                    "sha256 {sha}, the segment's is {}",
                    segment.sha256
                )))
            }
            // Written by something else: read it to know.
            None => {}
        }
    }
    let bytes = match target.store().get(key).await {
        Ok(got) => got.bytes().await,
        Err(e) => Err(e),
    };
    let bytes = match bytes {
        Ok(b) => b,
        Err(object_store::Error::NotFound { .. }) => return Ok(Existing::Absent),
        Err(e) => return Err(target_error(target, "GET", key, read_kind(&e), &e)),
    };
    let sha = crate::digest::sha256_hex(&bytes);
    Ok(if sha == segment.sha256 {
        Existing::Same
    } else {
        Existing::Different(format!("sha256 {sha}, the segment's is {}", segment.sha256))
    })
}

/// A failed read: a 404 here was already taken as "no object", so it is not a missing bucket.
fn read_kind(e: &object_store::Error) -> FailureKind {
    match classify(e) {
        FailureKind::NoBucket => FailureKind::Transient,
        other => other,
    }
}

enum Created {
    Yes,
    /// A conditional create found the key taken.
    KeyTaken,
}

fn attributes(target: &Target, segment: &Segment) -> Attributes {
    let mut attributes = Attributes::new();
    if target.keeps_metadata() {
        attributes.insert(
            Attribute::Metadata(SHA256_METADATA.into()),
            AttributeValue::from(segment.sha256.clone()),
        );
    }
    attributes
}

async fn upload(
    target: &Target,
    key: &Path,
    segment: &Segment,
    options: SendOptions<'_>,
) -> Result<Created, ShipError> {
    let part_size = options.part_size.max(1);
    if segment.bytes.len() > part_size {
        return multipart(target, key, segment, options).await;
    }
    if let Some(t) = options.throttle {
        t.acquire(segment.len()).await;
    }
    loop {
        let conditional = target.conditional();
        let put = PutOptions {
            mode: if conditional {
                PutMode::Create
            } else {
                PutMode::Overwrite
            },
            attributes: attributes(target, segment),
            ..PutOptions::default()
        };
        let payload = PutPayload::from_bytes(segment.bytes.clone());
        match target.store().put_opts(key, payload, put).await {
            Ok(_) => return Ok(Created::Yes),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => return Ok(Created::KeyTaken),
            // The HEAD just found no object; without conditional creates that check is the
            // only guard (one owner ships a data directory, so nobody else writes its keys).
            Err(e) if conditional && conditional_unsupported(&e) => target.without_conditional(),
            Err(e) => return Err(target_error(target, "PUT", key, classify(&e), &e)),
        }
    }
}

/// Parts of `part_size` in order, then complete; any failure aborts the upload so no parts
/// are left behind (best effort: a crash leaves them to the bucket's lifecycle rules).
async fn multipart(
    target: &Target,
    key: &Path,
    segment: &Segment,
    options: SendOptions<'_>,
) -> Result<Created, ShipError> {
    let fail =
        |e: &object_store::Error| target_error(target, "multipart upload", key, classify(e), e);
    let mut upload = target
        .store()
        .put_multipart_opts(
            key,
            PutMultipartOptions {
                attributes: attributes(target, segment),
                ..PutMultipartOptions::default()
            },
        )
        .await
        .map_err(|e| fail(&e))?;
    let sent = async {
        let mut start = 0;
        while start < segment.bytes.len() {
            let end = (start + options.part_size.max(1)).min(segment.bytes.len());
            if let Some(t) = options.throttle {
                t.acquire((end - start) as u64).await;
            }
            upload
                .put_part(PutPayload::from_bytes(segment.bytes.slice(start..end)))
                .await?;
            start = end;
        }
        upload.complete().await
    }
    .await;
    match sent {
        Ok(_) => Ok(Created::Yes),
        Err(e) => {
            let _ = upload.abort().await;
            Err(fail(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;
    use object_store::{ObjectStore as _, ObjectStoreExt as _};

    use super::*;

    const OPTIONS: SendOptions<'static> = SendOptions {
        part_size: 8 << 20,
        throttle: None,
    };

    fn target() -> (Target, Arc<InMemory>) {
        Target::in_memory("s3://bucket/edge").unwrap()
    }

    async fn stored(store: &InMemory, key: &str) -> Option<Bytes> {
        match store.get(&Path::from(key)).await {
            Ok(r) => Some(r.bytes().await.unwrap()),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("{e}"),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn uploads_once_with_its_checksum_then_adopts() {
        let (t, store) = target();
        let seg = Segment::new("agent_1_2.json.br", b"segment bytes".to_vec());
        let key = "edge/agent/1970-01-01/agent_1_2.json.br";
        assert_eq!(
            ship(&t, key, &seg, OPTIONS).await.unwrap(),
            Shipped::Uploaded
        );
        assert_eq!(stored(&store, key).await.unwrap(), seg.bytes);
        let head = store
            .get_opts(
                &Path::from(key),
                GetOptions {
                    head: true,
                    ..GetOptions::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            head.attributes
                .get(&Attribute::Metadata(SHA256_METADATA.into()))
                .map(|v| v.as_ref().to_owned()),
            Some(seg.sha256.clone())
        );
        // Again (a crash after the upload, before the ack): adopted, not uploaded twice.
        let version = head.meta.e_tag.clone();
        assert_eq!(
            ship(&t, key, &seg, OPTIONS).await.unwrap(),
            Shipped::AlreadyThere
        );
        let again = store.head(&Path::from(key)).await.unwrap();
        assert_eq!(again.e_tag, version, "not written again");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_identical_object_without_metadata_is_adopted_by_its_bytes() {
        let (t, store) = target();
        let seg = Segment::new("agent_1_2.json.br", b"same bytes".to_vec());
        let key = Path::from("k/agent_1_2.json.br");
        store.put(&key, seg.bytes.clone().into()).await.unwrap();
        let before = store.head(&key).await.unwrap().e_tag;
        assert_eq!(
            ship(&t, key.as_ref(), &seg, OPTIONS).await.unwrap(),
            Shipped::AlreadyThere
        );
        assert_eq!(store.head(&key).await.unwrap().e_tag, before);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_different_object_is_refused_and_kept() {
        let (t, store) = target();
        let seg = Segment::new("agent_1_2.json.br", b"ours".to_vec());
        for (other, detail) in [
            (b"theirs, longer".to_vec(), "bytes"),
            (b"thrs".to_vec(), "sha256"),
        ] {
            let key = Path::from(format!("k/{}", other.len()));
            store.put(&key, other.clone().into()).await.unwrap();
            let e = ship(&t, key.as_ref(), &seg, OPTIONS).await.unwrap_err();
            assert_eq!(e.kind(), FailureKind::Conflict);
            let text = e.to_string();
            assert!(
                text.contains(key.as_ref())
                    && text.contains(detail)
                    && text.contains("s3://bucket/edge"),
                "{text}"
            );
            assert_eq!(
                stored(&store, key.as_ref()).await.unwrap(),
                Bytes::from(other)
            );
        }
        // Recorded metadata that disagrees is a conflict too, without reading the object.
        let key = Path::from("k/meta");
        let mut attrs = Attributes::new();
        attrs.insert(Attribute::Metadata(SHA256_METADATA.into()), "00".into());
        store
            .put_opts(
                &key,
                seg.bytes.clone().into(),
                PutOptions {
                    attributes: attrs,
                    ..PutOptions::default()
                },
            )
            .await
            .unwrap();
        let e = ship(&t, key.as_ref(), &seg, OPTIONS).await.unwrap_err();
        assert_eq!(e.kind(), FailureKind::Conflict, "{e}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn large_segments_go_in_parts() {
        let (t, store) = target();
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let seg = Segment::new("agent_1_2.json.br", bytes.clone());
        let throttle = Throttle::new(u64::MAX / 2);
        let options = SendOptions {
            part_size: 30_000,
            throttle: Some(&throttle),
        };
        assert_eq!(
            ship(&t, "k/big", &seg, options).await.unwrap(),
            Shipped::Uploaded
        );
        assert_eq!(stored(&store, "k/big").await.unwrap(), Bytes::from(bytes));
        assert_eq!(
            ship(&t, "k/big", &seg, options).await.unwrap(),
            Shipped::AlreadyThere
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn file_targets_compare_bytes_and_are_synced() {
        let tmp = tempfile::tempdir().unwrap();
        let config = super::super::ShipConfig {
            target: Some(format!("file://{}", tmp.path().display())),
            ..super::super::ShipConfig::default()
        };
        let t = Target::open(&config).unwrap();
        let seg = Segment::new("agent_1_2.json.br", b"file bytes".to_vec());
        assert_eq!(
            ship(&t, "a/b/seg", &seg, OPTIONS).await.unwrap(),
            Shipped::Uploaded
        );
        assert_eq!(
            std::fs::read(tmp.path().join("a/b/seg")).unwrap(),
            b"file bytes"
        );
        assert_eq!(
            ship(&t, "a/b/seg", &seg, OPTIONS).await.unwrap(),
            Shipped::AlreadyThere
        );
        std::fs::write(tmp.path().join("a/b/other"), b"file bytez").unwrap();
        let e = ship(&t, "a/b/other", &seg, OPTIONS).await.unwrap_err();
        assert_eq!(e.kind(), FailureKind::Conflict, "{e}");
        assert_eq!(
            std::fs::read(tmp.path().join("a/b/other")).unwrap(),
            b"file bytez"
        );
    }
}
