//! The fixed yardstick: a plain axum + sqlx service that answers each request
//! with one UPDATE and one INSERT, so that the product's calls can be compared
//! with a figure that does not move when the product's statements change.
//!
//! `POST /yardstick/{key}` runs them in one transaction (`BEGIN`, `UPDATE`,
//! `INSERT`, `COMMIT`: four round trips); `POST /yardstick/{key}/one-statement`
//! runs the same work as one data-modifying CTE, without an explicit
//! transaction (one round trip). Commits are as durable as the cluster is
//! configured. Its tables live in a database of their own: `accounts` (one row
//! per simulated user, its version bumped by every request) and `events` (one
//! row per request, about the size of an audit event).

use std::net::{Ipv4Addr, SocketAddr};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::services;

type Reply = Result<Json<Value>, (StatusCode, String)>;

/// Creates the yardstick's tables in an empty database, with `accounts` rows
/// numbered from 0.
pub(crate) async fn prepare(conn: &mut sqlx::PgConnection, accounts: usize) -> anyhow::Result<()> {
    for statement in [
        "CREATE TABLE accounts (id bigint PRIMARY KEY, version bigint NOT NULL, \
         updated_at timestamptz NOT NULL)",
        "CREATE TABLE events (id uuid PRIMARY KEY, account_id bigint NOT NULL, \
         kind text NOT NULL, detail jsonb NOT NULL, created_at timestamptz NOT NULL)",
        "CREATE INDEX events_account_idx ON events (account_id, created_at)",
    ] {
        sqlx::query(statement).execute(&mut *conn).await?;
    }
    sqlx::query(
        "INSERT INTO accounts SELECT g, 0, now() FROM generate_series(0, $1::bigint - 1) g",
    )
    .bind(accounts as i64)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn router(pool: PgPool) -> Router {
    Router::new()
        .route("/api/health", get(|| async { "ok" }))
        .route("/yardstick/{key}", post(transaction))
        .route("/yardstick/{key}/one-statement", post(one_statement))
        .with_state(pool)
}

/// `bench yardstick`: serves the yardstick on loopback until killed (its
/// database from the DB_* variables).
pub(crate) async fn serve(port: u16, pool: u32) -> anyhow::Result<()> {
    let url = format!(
        "postgres://{}:{}@{}:{}/{}",
        services::env("DB_USER")?,
        services::env("DB_PASSWORD")?,
        services::env("DB_HOST")?,
        services::env("DB_PORT")?,
        services::env("DB_NAME")?
    );
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(pool)
        .connect_lazy(&url)?;
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    axum::serve(listener, router(pool)).await?;
    Ok(())
}

fn failed(e: sqlx::Error) -> (StatusCode, String) {
    (StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

/// The event's kind and detail from the request body.
fn event(body: &Value) -> (String, String) {
    (
        body["kind"].as_str().unwrap_or("counted").to_owned(),
        body["detail"].to_string(),
    )
}

async fn transaction(
    State(pool): State<PgPool>,
    Path(key): Path<i64>,
    Json(body): Json<Value>,
) -> Reply {
    let (kind, detail) = event(&body);
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await.map_err(failed)?;
    let version: i64 = sqlx::query_scalar(
        "UPDATE accounts SET version = version + 1, updated_at = now() WHERE id = $1 \
         RETURNING version",
    )
    .bind(key)
    .fetch_one(&mut *tx)
    .await
    .map_err(failed)?;
    sqlx::query(
        "INSERT INTO events (id, account_id, kind, detail, created_at) \
         VALUES ($1, $2, $3, $4::jsonb, now())",
    )
    .bind(id)
    .bind(key)
    .bind(kind)
    .bind(detail)
    .execute(&mut *tx)
    .await
    .map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    Ok(Json(json!({ "id": id, "version": version })))
}

async fn one_statement(
    State(pool): State<PgPool>,
    Path(key): Path<i64>,
    Json(body): Json<Value>,
) -> Reply {
    let (kind, detail) = event(&body);
    let id = Uuid::now_v7();
    let version: i64 = sqlx::query_scalar(
        "WITH updated AS ( \
           UPDATE accounts SET version = version + 1, updated_at = now() WHERE id = $1 \
           RETURNING id, version), \
         inserted AS ( \
           INSERT INTO events (id, account_id, kind, detail, created_at) \
           SELECT $2, id, $3, $4::jsonb, now() FROM updated RETURNING id) \
         SELECT updated.version FROM updated, inserted",
    )
    .bind(key)
    .bind(id)
    .bind(kind)
    .bind(detail)
    .fetch_one(&pool)
    .await
    .map_err(failed)?;
    Ok(Json(json!({ "id": id, "version": version })))
}
