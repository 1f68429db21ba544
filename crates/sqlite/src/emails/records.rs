//! Records of many emails in one `INSERT` (see [`crate::coalesce`]): every accepted
//! email has one, so under load the writer's batch held one `INSERT` per email, each a
//! round trip to SQLite's thread before the batch's commit, which every `250` waits for.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use sqlx::QueryBuilder;
use sqlx::sqlite::SqliteConnection;

use super::row::EmailRow;
use crate::coalesce::Coalescer;

/// A record to write, with its body if the record keeps it.
pub(super) struct NewRecord {
    pub(super) row: EmailRow,
    pub(super) body: Option<Bytes>,
}

/// The records waiting for the writer.
pub(super) type Records = Coalescer<NewRecord, ()>;

/// Records every email of `records`, each replacing an earlier record of the same id
/// (a retried commit).
pub(super) fn insert_all<'c>(
    conn: &'c mut SqliteConnection,
    records: &'c [NewRecord],
) -> BoxFuture<'c, Result<Vec<()>, sqlx::Error>> {
    Box::pin(async move {
        let mut insert = QueryBuilder::new(
            "INSERT INTO emails (id, received_at, sender, recipients, size, peer, helo, tls, encoding, body) ",
        );
        insert.push_values(records, |mut values, record| {
            let row = &record.row;
            values
                .push_bind(row.id.clone())
                .push_bind(row.received_at)
                .push_bind(row.sender.clone())
                .push_bind(row.recipients.clone())
                .push_bind(row.size)
                .push_bind(row.peer.clone())
                .push_bind(row.helo.clone())
                .push_bind(row.tls)
                .push_bind(row.encoding)
                .push_bind(record.body.as_ref().map(|body| body.to_vec()));
        });
        insert.push(
            " ON CONFLICT (id) DO UPDATE SET received_at = excluded.received_at,
                 sender = excluded.sender, recipients = excluded.recipients, size = excluded.size,
                 peer = excluded.peer, helo = excluded.helo, tls = excluded.tls,
                 encoding = excluded.encoding, body = excluded.body",
        );
        insert.build().execute(conn).await?;
        Ok(vec![(); records.len()])
    })
}
