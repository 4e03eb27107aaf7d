//! The `repository` export: `store` and `transaction` resources over the core's [`Store`] and
//! [`OpenTransaction`]. Each method converts, calls the core, converts back.

use std::rc::Rc;
use std::sync::Arc;

use super::convert::{
    key_from_wit, migration_to_wit, query_from_wit, row_from_wit, row_into_wit, schema_from_wit,
    tx_mode,
};
use super::exports::edgestore::storage::repository as r;
use super::{admin, driver, track, types, Component};
use crate::repository::{OpenTransaction, Store};
use crate::sql::SingleConnection;

impl r::Guest for Component {
    type Store = StoreRes;
    type Transaction = TxRes;
}

/// The `store` resource. The core store is shared with the admin registry (weakly).
pub struct StoreRes {
    inner: Rc<Store>,
}

/// The `transaction` resource: one open level (transaction or savepoint). Dropping it rolls
/// back (the core's `Drop`).
pub struct TxRes {
    inner: OpenTransaction,
}

/// The by-table operations, identical on both resources; `$op` prefixes the counter names.
macro_rules! table_ops {
    ($op:literal) => {
        fn create(&self, table: String, row: types::Row) -> Result<bool, types::Error> {
            track(concat!($op, ".create"), || {
                self.inner.create(&table, &row_from_wit(row))
            })
        }
        fn create_many(&self, table: String, rows: Vec<types::Row>) -> Result<u64, types::Error> {
            track(concat!($op, ".create-many"), || {
                let rows: Vec<_> = rows.into_iter().map(row_from_wit).collect();
                self.inner.create_many_owned(&table, rows)
            })
        }
        fn upsert(&self, table: String, row: types::Row) -> Result<(), types::Error> {
            track(concat!($op, ".upsert"), || {
                self.inner.upsert(&table, &row_from_wit(row))
            })
        }
        fn insert_or_ignore(&self, table: String, row: types::Row) -> Result<bool, types::Error> {
            track(concat!($op, ".insert-or-ignore"), || {
                self.inner.insert_or_ignore(&table, &row_from_wit(row))
            })
        }
        fn get(&self, table: String, key: types::Key) -> Result<types::Row, types::Error> {
            track(concat!($op, ".get"), || {
                self.inner.get(&table, &key_from_wit(key)).map(row_into_wit)
            })
        }
        fn get_many(
            &self,
            table: String,
            keys: Vec<types::Key>,
        ) -> Result<Vec<Option<types::Row>>, types::Error> {
            track(concat!($op, ".get-many"), || {
                let keys: Vec<_> = keys.into_iter().map(key_from_wit).collect();
                let rows = self.inner.get_many(&table, &keys)?;
                Ok(rows.into_iter().map(|r| r.map(row_into_wit)).collect())
            })
        }
        fn find(&self, table: String, query: r::Query) -> Result<Vec<types::Row>, types::Error> {
            track(concat!($op, ".find"), || {
                let rows = self.inner.find(&table, &query_from_wit(query)?)?;
                Ok(rows.into_iter().map(row_into_wit).collect())
            })
        }
        fn update(&self, table: String, row: types::Row) -> Result<(), types::Error> {
            track(concat!($op, ".update"), || {
                self.inner.update(&table, &row_from_wit(row))
            })
        }
        fn delete(&self, table: String, key: types::Key) -> Result<bool, types::Error> {
            track(concat!($op, ".delete"), || {
                self.inner.delete(&table, &key_from_wit(key))
            })
        }
        fn delete_all(&self, table: String) -> Result<u64, types::Error> {
            track(concat!($op, ".delete-all"), || {
                self.inner.delete_all(&table)
            })
        }
        fn count(&self, table: String) -> Result<u64, types::Error> {
            track(concat!($op, ".count"), || self.inner.count(&table))
        }
    };
}

/// Open the store behind `label` on the world's driver. The `repository` export and the
/// standalone command entry point both open stores here.
pub(super) fn open_store(label: &str) -> crate::Result<Store> {
    let conn = driver::open(label)?;
    #[allow(clippy::arc_with_non_send_sync)] // no threads in the component
    let db = Arc::new(SingleConnection::new(conn));
    Ok(Store::new(db))
}

impl r::GuestStore for StoreRes {
    fn open(label: String) -> Result<r::Store, types::Error> {
        track("store.open", || {
            let inner = Rc::new(open_store(&label)?);
            admin::register_store(&inner);
            Ok(r::Store::new(StoreRes { inner }))
        })
    }

    fn register(&self, schema: r::Schema) -> Result<r::Migration, types::Error> {
        track("store.register", || {
            let migration = self.inner.register(schema_from_wit(schema)?)?;
            Ok(migration_to_wit(migration))
        })
    }

    table_ops!("store");

    fn begin(&self, mode: r::TxMode) -> Result<r::Transaction, types::Error> {
        track("store.begin", || {
            let inner = self.inner.begin(tx_mode(mode))?;
            Ok(r::Transaction::new(TxRes { inner }))
        })
    }
}

impl r::GuestTransaction for TxRes {
    table_ops!("transaction");

    fn savepoint(&self) -> Result<r::Transaction, types::Error> {
        track("transaction.savepoint", || {
            let inner = self.inner.savepoint()?;
            Ok(r::Transaction::new(TxRes { inner }))
        })
    }

    fn commit(&self) -> Result<(), types::Error> {
        track("transaction.commit", || self.inner.commit())
    }

    fn rollback(&self) -> Result<(), types::Error> {
        track("transaction.rollback", || self.inner.rollback())
    }
}
