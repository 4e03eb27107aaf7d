//! `edgestore db ...`: the repository's built-in models through the typed client (either
//! engine). The read commands (`models`, `count`, `get`, `find`) are the shared definition
//! ([`command_line::DbCommand`]), which the standalone component's command parses too; `put`
//! and `delete` are this CLI's. A model joins the CLI by implementing [`CliModel`] and being
//! named once in `registry!`'s invocation (and in [`command_line::BUILT_IN_TABLES`]).
//!
//! `db put` upserts JSON lines, one transaction per batch; on a bad line N the good lines
//! before it are committed, the error names line N, the exit status is non-zero.

use std::io::Write;

use anyhow::{anyhow, bail};
use clap::Subcommand;
use edgestore::command_line;
use edgestore::model::ResourceTagsKey;
use edgestore::model::{to_key, to_row};
use edgestore::present::{self, ModelView};
use edgestore::Schema;
use edgestore::{Creator, ErrorCode, Model, Query, ResourceTags, SystemClock, Timestamp};
use edgestore_host::admin::{self, AdminClient};
use edgestore_host::{AsyncStorage, Store};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::input::Lines;
use super::{Ctx, Inspection, Mutation};

/// Rows per transaction of `db put`.
const BATCH: usize = 1_000;

/// The shared read commands.
type Shared = command_line::DbCommand;

/// `db` commands.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// The shared read commands.
    #[command(flatten)]
    Shared(Shared),
    /// Upsert JSON lines from stdin (one object per line). Fields the model generates
    /// (resource_tags: `id`, `record_created`, `record_updated`) are filled when absent.
    Put {
        /// Model name (see `db models`).
        model: String,
    },
    /// Delete rows by key (syntax as for `db get`); a missing key is an error.
    Delete {
        /// Model name (see `db models`).
        model: String,
        /// Keys.
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<String>,
    },
}

/// What the CLI needs of a model beyond [`Model`].
pub trait CliModel: Model + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The key type of its `Storage<M, Id>`.
    type Id: Serialize + Send + Sync + 'static;
    /// Name on the command line.
    const NAME: &'static str;
    /// Parse a textual key.
    fn parse_key(text: &str) -> anyhow::Result<Self::Id>;
    /// Fill generated fields that `object` lacks.
    fn fill(object: &mut serde_json::Map<String, serde_json::Value>, now: Timestamp);
}

// The key syntax and its parser are the core's, shared with the standalone component.
impl CliModel for ResourceTags {
    type Id = ResourceTagsKey;
    const NAME: &'static str = ResourceTags::TABLE;

    fn parse_key(text: &str) -> anyhow::Result<ResourceTagsKey> {
        Ok(ResourceTags::parse_key(text)?)
    }

    fn fill(object: &mut serde_json::Map<String, serde_json::Value>, now: Timestamp) {
        object
            .entry("id")
            .or_insert_with(|| uuid::Uuid::new_v4().to_string().into());
        for field in ["record_created", "record_updated"] {
            object.entry(field).or_insert_with(|| now.0.into());
        }
    }
}

/// The built-in models: `names()` lists them, `views` shows those whose tables a database
/// holds, `dispatch` runs a command on one by name.
macro_rules! registry {
    ($($model:ty),* $(,)?) => {
        fn names() -> Vec<&'static str> {
            vec![$(<$model as CliModel>::NAME),*]
        }

        async fn views(store: &Store) -> anyhow::Result<Vec<ModelView>> {
            let mut views = Vec::new();
            $(
                match store.storage::<$model, <$model as CliModel>::Id>().await {
                    Ok(storage) => views.push(command_line::model_view(storage.schema())),
                    Err(e) if e.code() == ErrorCode::TableMissing => {}
                    Err(e) => return Err(e.into()),
                }
            )*
            Ok(views)
        }

        async fn dispatch(ctx: &Ctx, store: &Store, name: &str, cmd: DbCommand) -> anyhow::Result<()> {
            $(
                if name == <$model as CliModel>::NAME {
                    return match store.storage::<$model, <$model as CliModel>::Id>().await {
                        Ok(storage) => command::<$model>(ctx, &Target::Local(&storage), cmd).await,
                        // Read-only, a table nobody created yet holds no rows.
                        Err(e) if store.is_inspector() && e.code() == ErrorCode::TableMissing => {
                            no_table::<$model>(ctx, cmd)
                        }
                        Err(e) => Err(e.into()),
                    };
                }
            )*
            Err(anyhow!("unknown model {name:?}"))
        }

        fn dispatch_no_table(ctx: &Ctx, name: &str, cmd: DbCommand) -> anyhow::Result<()> {
            $(
                if name == <$model as CliModel>::NAME {
                    return no_table::<$model>(ctx, cmd);
                }
            )*
            Err(anyhow!("unknown model {name:?}"))
        }

        async fn dispatch_remote(ctx: &Ctx, client: &AdminClient, name: &str, cmd: DbCommand) -> anyhow::Result<()> {
            $(
                if name == <$model as CliModel>::NAME {
                    let target = Target::<$model>::Remote(client, <$model as Model>::schema());
                    return command::<$model>(ctx, &target, cmd).await;
                }
            )*
            Err(anyhow!("unknown model {name:?}"))
        }
    };
}

registry!(ResourceTags);

/// Run a `db` command.
pub async fn run(ctx: &Ctx, cmd: DbCommand) -> anyhow::Result<()> {
    let name = match &cmd {
        DbCommand::Shared(Shared::Models) => return models(ctx).await,
        DbCommand::Put { model } | DbCommand::Delete { model, .. } => model.clone(),
        DbCommand::Shared(
            Shared::Get { table, .. } | Shared::Count { table } | Shared::Find { table, .. },
        ) => table.clone(),
    };
    // An unknown model is refused before anything is opened or created.
    if !names().contains(&name.as_str()) {
        bail!("unknown model {name:?} (known: {})", names().join(", "));
    }
    let store = match cmd {
        // Reads: read-only, beside a running owner.
        DbCommand::Shared(_) => {
            let Inspection {
                store,
                has_database,
                ..
            } = ctx.inspect().await?;
            if !has_database {
                store.close().await?;
                return dispatch_no_table(ctx, &name, cmd);
            }
            store
        }
        DbCommand::Put { .. } | DbCommand::Delete { .. } => {
            let verb = if matches!(cmd, DbCommand::Put { .. }) {
                "put"
            } else {
                "delete"
            };
            match ctx.mutate(&format!("db {verb}")).await? {
                Mutation::Own(store) => store,
                Mutation::Forward(client, owner) => {
                    eprintln!("note: forwarded to the owner, {}", owner.describe());
                    return dispatch_remote(ctx, &client, &name, cmd).await;
                }
            }
        }
    };
    let result = dispatch(ctx, &store, &name, cmd).await;
    let closed = store.close().await;
    result?;
    Ok(closed?)
}

/// `db models`: the built-in models whose tables the database holds (read-only).
async fn models(ctx: &Ctx) -> anyhow::Result<()> {
    let Inspection {
        store,
        has_database,
        ..
    } = ctx.inspect().await?;
    let result = if has_database {
        views(&store).await
    } else {
        Ok(Vec::new())
    };
    let closed = store.close().await;
    let mut views = result?;
    closed?;
    views.sort_by(|a, b| a.table.cmp(&b.table));
    out(&present::models(&views, ctx.json))
}

/// A read command on a built-in model's table that nothing created yet (or without a
/// database): no rows. The arguments are still checked against the model.
fn no_table<M: CliModel>(ctx: &Ctx, cmd: DbCommand) -> anyhow::Result<()> {
    match cmd {
        DbCommand::Shared(Shared::Count { .. }) => out(&present::count(M::NAME, 0, ctx.json)),
        DbCommand::Shared(Shared::Find { filters, .. }) => {
            let schema = M::schema();
            for f in &filters {
                f.condition(&schema)?;
            }
            Ok(())
        }
        DbCommand::Shared(Shared::Get { keys, .. }) => {
            for k in &keys {
                M::parse_key(k)?;
            }
            let first = keys.first().map(String::as_str).unwrap_or_default();
            Err(edgestore::Error::not_found(format!(
                "no row in {} with key {first} (no {} table yet)",
                M::NAME,
                M::NAME
            ))
            .into())
        }
        _ => bail!("{}: no such table yet", M::NAME),
    }
}

/// Where a `db` command's operations go.
enum Target<'a, M: CliModel> {
    /// This process's store (read-only for reads; the owner for writes).
    Local(&'a AsyncStorage<M, M::Id>),
    /// The running owner, through its admin socket (writes only).
    Remote(&'a AdminClient, Schema),
}

impl<M: CliModel> Target<'_, M> {
    fn local(&self) -> anyhow::Result<&AsyncStorage<M, M::Id>> {
        match self {
            Target::Local(s) => Ok(s),
            Target::Remote(..) => bail!("reads are not forwarded to the owner"),
        }
    }

    fn schema(&self) -> &Schema {
        match self {
            Target::Local(s) => s.schema(),
            Target::Remote(_, schema) => schema,
        }
    }

    /// Upsert a batch in one transaction.
    async fn upsert_batch(&self, items: Vec<M>) -> anyhow::Result<()> {
        match self {
            Target::Local(storage) => {
                storage
                    .tx(move |tx| {
                        for item in &items {
                            tx.upsert(item)?;
                        }
                        Ok(())
                    })
                    .await?;
            }
            Target::Remote(client, schema) => {
                let rows = items
                    .iter()
                    .map(|m| to_row(schema, m))
                    .collect::<edgestore::Result<Vec<_>>>()?;
                let req = admin::UpsertRequest {
                    schema: schema.clone(),
                    rows,
                };
                client
                    .call::<_, admin::UpsertReply>("/v1/db/upsert", &req)
                    .await?;
            }
        }
        Ok(())
    }

    async fn delete(&self, id: &M::Id) -> anyhow::Result<bool> {
        match self {
            Target::Local(storage) => Ok(storage.delete(id).await?),
            Target::Remote(client, schema) => {
                let req = admin::DeleteRequest {
                    schema: schema.clone(),
                    keys: vec![to_key(schema, id)?],
                };
                let reply: admin::DeleteReply = client.call("/v1/db/delete", &req).await?;
                Ok(reply.deleted.first().copied().unwrap_or(false))
            }
        }
    }
}

async fn command<M: CliModel>(
    ctx: &Ctx,
    target: &Target<'_, M>,
    cmd: DbCommand,
) -> anyhow::Result<()> {
    let json = ctx.json;
    match cmd {
        DbCommand::Shared(Shared::Models) => bail!("db models lists no single model"),
        DbCommand::Put { .. } => put(target, json).await,
        DbCommand::Shared(Shared::Get { keys, .. }) => {
            let ids = keys
                .iter()
                .map(|k| M::parse_key(k))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let storage = target.local()?;
            let mut text = String::new();
            for (id, key) in ids.iter().zip(&keys) {
                let row = storage.get(id).await.map_err(|e| match e.code() {
                    // As the standalone command says it: the table and the key as given.
                    ErrorCode::NotFound => anyhow::Error::new(edgestore::Error::not_found(
                        format!("no row in {} with key {key}", M::NAME),
                    )),
                    _ => anyhow::Error::new(e).context(format!("{} {key}", M::NAME)),
                })?;
                text.push_str(&present::json_line(&row)?);
                text.push('\n');
            }
            out(&text)
        }
        DbCommand::Shared(Shared::Find { filters, limit, .. }) => {
            let storage = target.local()?;
            let schema = target.schema();
            let mut query = Query::all();
            for f in &filters {
                query = query.filter(f.condition(schema)?);
            }
            if let Some(n) = limit {
                query = query.limit(n);
            }
            let mut text = String::new();
            for row in storage.find_all(&query).await? {
                text.push_str(&present::json_line(&row)?);
                text.push('\n');
            }
            out(&text)
        }
        DbCommand::Shared(Shared::Count { .. }) => out(&present::count(
            M::NAME,
            target.local()?.count().await?,
            json,
        )),
        DbCommand::Delete { keys, .. } => {
            let ids = keys
                .iter()
                .map(|k| M::parse_key(k))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut deleted = 0;
            for (id, key) in ids.iter().zip(&keys) {
                if !target.delete(id).await? {
                    out(&present::count("deleted", deleted, json))?;
                    bail!("{} {key}: not found", M::NAME);
                }
                deleted += 1;
            }
            out(&present::count("deleted", deleted, json))
        }
    }
}

async fn put<M: CliModel>(target: &Target<'_, M>, json: bool) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    let mut lines = Lines::new(stdin.lock());
    let mut total = 0u64;
    loop {
        let now = Timestamp::now(&SystemClock);
        let mut items = Vec::new();
        let batch = lines.next_batch(BATCH, |l| {
            let mut value: serde_json::Value =
                serde_json::from_str(l).map_err(|e| format!("not valid JSON: {e}"))?;
            let object = value
                .as_object_mut()
                .ok_or_else(|| format!("expected a JSON object for {}", M::NAME))?;
            M::fill(object, now);
            let item: M =
                serde_json::from_value(value).map_err(|e| format!("not a {} row: {e}", M::NAME))?;
            items.push(item);
            Ok(())
        });
        let n = items.len() as u64;
        if n > 0 {
            // A failed batch (disk full, busy) commits none of its rows; say what is kept.
            target.upsert_batch(items).await.map_err(|e| {
                e.context(format!(
                    "stopped; the {total} rows before this batch of {n} are committed"
                ))
            })?;
            total += n;
        }
        if let Some(e) = batch.error {
            return Err(anyhow::Error::new(e)
                .context(format!("stopped; the {total} rows before it are committed")));
        }
        if batch.done {
            break;
        }
    }
    eprint!(
        "{}",
        super::input::written(M::NAME, total, "committed", json)
    );
    Ok(())
}

fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    Ok(stdout.flush()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgestore::inspect::Filter;
    use edgestore::Condition;

    #[test]
    fn registry_is_the_core_s_built_in_models() {
        assert_eq!(names(), command_line::BUILT_IN_TABLES);
        for name in names() {
            assert!(command_line::built_in_schema(name).is_some(), "{name}");
        }
    }

    #[test]
    fn resource_tags_keys() {
        assert_eq!(
            <ResourceTags as CliModel>::parse_key("pod/prod/web-0").unwrap(),
            ("pod".into(), "web-0".into(), Some("prod".into()))
        );
        assert_eq!(
            <ResourceTags as CliModel>::parse_key("node/worker-1").unwrap(),
            ("node".into(), "worker-1".into(), None)
        );
        for bad in ["pod", "pod//x", "a/b/c/d", "/x", ""] {
            let e = <ResourceTags as CliModel>::parse_key(bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains("bad resource_tags key"), "{bad}: {e}");
            assert!(e.contains("TYPE/NAMESPACE/NAME"), "{bad}: {e}");
        }
    }

    #[test]
    fn where_conditions_follow_column_types() {
        let schema = ResourceTags::schema();
        let condition = |text: &str| -> edgestore::Result<Condition> {
            Filter::parse(text)?.condition(&schema)
        };
        assert_eq!(
            condition("namespace=prod").unwrap(),
            Condition::eq("namespace", "prod")
        );
        assert_eq!(
            condition("sent_at=null").unwrap(),
            Condition::is_null("sent_at")
        );
        assert_eq!(
            condition("sent_at=2024-05-01T12:00:00.123Z").unwrap(),
            Condition::eq("sent_at", 1_714_564_800_123i64)
        );
        assert!(condition("nosuch=1")
            .unwrap_err()
            .to_string()
            .contains("nosuch"));
        assert!(condition("namespace").is_err());
    }

    #[test]
    fn fill_adds_only_missing_generated_fields() {
        let mut o = serde_json::Map::new();
        o.insert("id".into(), "keep".into());
        ResourceTags::fill(&mut o, Timestamp(5));
        assert_eq!(o["id"], "keep");
        assert_eq!(o["record_created"], 5);
        assert_eq!(o["record_updated"], 5);
    }
}
