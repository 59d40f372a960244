//! The rejection log in SQLite. Ids are UUIDv7 text, which sorts by time: the newest-first
//! list, its cursor and its time bounds are seeks on the primary key or on (filter, id).

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use super::super::rejections::{
    v7_floor, Rejection, RejectionCount, RejectionQuery, RejectionWrite,
};

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rejections (
    id TEXT PRIMARY KEY,
    first_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    route TEXT NOT NULL,
    client TEXT,
    status INTEGER NOT NULL,
    code TEXT NOT NULL,
    detail TEXT NOT NULL,
    field_errors TEXT,
    request_id TEXT NOT NULL,
    headers TEXT NOT NULL,
    body BLOB,
    body_size INTEGER NOT NULL,
    authenticated INTEGER NOT NULL,
    replayed_ms INTEGER,
    replay_outcome TEXT,
    delivery_id TEXT
);
CREATE INDEX IF NOT EXISTS rejections_route ON rejections(route, id);
CREATE INDEX IF NOT EXISTS rejections_code ON rejections(code, id);
CREATE INDEX IF NOT EXISTS rejections_client ON rejections(client, id);
";

/// Applies one write; returns the rows it touched.
pub fn write(conn: &Connection, w: &RejectionWrite) -> rusqlite::Result<usize> {
    match w {
        RejectionWrite::Insert(r) => conn
            .prepare_cached(
                "INSERT OR IGNORE INTO rejections (id, first_ms, last_ms, count, route, client, status, code, detail, field_errors, request_id, headers, body, body_size, authenticated, delivery_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )?
            .execute(params![
                r.id.to_string(),
                r.first_ms,
                r.last_ms,
                r.count as i64,
                r.route,
                r.client,
                r.status,
                r.code,
                r.detail,
                r.field_errors.as_ref().map(|v| v.to_string()),
                r.request_id,
                serde_json::to_string(&r.headers).unwrap_or_else(|_| "[]".into()),
                r.body,
                r.body_size as i64,
                r.authenticated,
                r.delivery_id,
            ]),
        RejectionWrite::AddCount { id, n, last_ms } => conn
            .prepare_cached(
                "UPDATE rejections SET count = count + ?2, last_ms = MAX(last_ms, ?3) WHERE id = ?1",
            )?
            .execute(params![id.to_string(), *n as i64, last_ms]),
        RejectionWrite::Replayed { id, at_ms, outcome } => conn
            .prepare_cached(
                "UPDATE rejections SET replayed_ms = ?2, replay_outcome = ?3 WHERE id = ?1",
            )?
            .execute(params![id.to_string(), at_ms, outcome]),
        RejectionWrite::Prune { before_ms, keep } => {
            let old = conn
                .prepare_cached("DELETE FROM rejections WHERE id < ?1")?
                .execute(params![v7_floor(*before_ms).to_string()])?;
            let beyond = conn
                .prepare_cached(
                    "DELETE FROM rejections WHERE id <= (SELECT id FROM rejections ORDER BY id DESC LIMIT 1 OFFSET ?1)",
                )?
                .execute(params![*keep as i64])?;
            Ok(old + beyond)
        }
    }
}

const SUMMARY: &str = "id, first_ms, last_ms, count, route, client, status, code, detail, field_errors, request_id, NULL, NULL, body_size, authenticated, replayed_ms, replay_outcome, delivery_id, (body IS NOT NULL AND length(body) = body_size)";
const FULL: &str = "id, first_ms, last_ms, count, route, client, status, code, detail, field_errors, request_id, headers, body, body_size, authenticated, replayed_ms, replay_outcome, delivery_id, (body IS NOT NULL AND length(body) = body_size)";

/// A page, newest first, without headers and bodies.
pub fn list(conn: &Connection, q: &RejectionQuery) -> rusqlite::Result<Vec<Rejection>> {
    let mut clauses = Vec::new();
    let mut values: Vec<SqlValue> = Vec::new();
    let mut bind = |clause: &str, value: SqlValue| {
        values.push(value);
        clauses.push(clause.replace('?', &format!("?{}", values.len())));
    };
    if let Some(route) = &q.route {
        bind("route = ?", SqlValue::Text(route.clone()));
    }
    if let Some(code) = &q.code {
        bind("code = ?", SqlValue::Text(code.clone()));
    }
    if let Some(client) = &q.client {
        bind("client = ?", SqlValue::Text(client.clone()));
    }
    if let Some(from) = q.from_ms {
        bind("id >= ?", SqlValue::Text(v7_floor(from).to_string()));
    }
    if let Some(to) = q.to_ms {
        bind("id < ?", SqlValue::Text(v7_floor(to).to_string()));
    }
    if let Some(before) = q.before {
        bind("id < ?", SqlValue::Text(before.to_string()));
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    values.push(SqlValue::Integer(q.limit as i64));
    let sql = format!(
        "SELECT {SUMMARY} FROM rejections {filter} ORDER BY id DESC LIMIT ?{}",
        values.len()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(values), from_row)?;
    rows.collect()
}

pub fn get(conn: &Connection, id: uuid::Uuid) -> rusqlite::Result<Option<Rejection>> {
    conn.prepare_cached(&format!("SELECT {FULL} FROM rejections WHERE id = ?1"))?
        .query_row(params![id.to_string()], from_row)
        .optional()
}

/// Requests per route and code among records first seen at or after `since_ms`.
pub fn counts_since(conn: &Connection, since_ms: i64) -> rusqlite::Result<Vec<RejectionCount>> {
    let mut stmt = conn.prepare_cached(
        "SELECT route, code, SUM(count) FROM rejections WHERE id >= ?1 GROUP BY route, code ORDER BY 3 DESC",
    )?;
    let rows = stmt.query_map(params![v7_floor(since_ms).to_string()], |r| {
        Ok(RejectionCount {
            route: r.get(0)?,
            code: r.get(1)?,
            count: r.get::<_, i64>(2)?.max(0) as u64,
        })
    })?;
    rows.collect()
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Rejection> {
    let text_id: String = r.get(0)?;
    let headers: Option<String> = r.get(11)?;
    let field_errors: Option<String> = r.get(9)?;
    let replayed_ms: Option<i64> = r.get(15)?;
    let replay_outcome: Option<String> = r.get(16)?;
    Ok(Rejection {
        id: uuid::Uuid::parse_str(&text_id).unwrap_or_default(),
        first_ms: r.get(1)?,
        last_ms: r.get(2)?,
        count: r.get::<_, i64>(3)?.max(0) as u64,
        route: r.get(4)?,
        client: r.get(5)?,
        status: r.get(6)?,
        code: r.get(7)?,
        detail: r.get(8)?,
        field_errors: field_errors.and_then(|s| serde_json::from_str(&s).ok()),
        request_id: r.get(10)?,
        headers: headers
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default(),
        body: r.get(12)?,
        body_size: r.get::<_, i64>(13)?.max(0) as u64,
        authenticated: r.get(14)?,
        replayed: replayed_ms.zip(replay_outcome),
        delivery_id: r.get(17)?,
        body_kept: r.get(18)?,
    })
}
