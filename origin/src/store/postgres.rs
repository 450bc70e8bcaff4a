//! PostgreSQL, for high availability: an active and a standby origin share one database.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::sql::SqlStore;
use super::{Embedded, StoreError, redact_url};

/// How long a call waits for a free connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The store on a PostgreSQL database.
pub type PgStore = SqlStore<sqlx::Postgres>;

impl SqlStore<sqlx::Postgres> {
    /// Connects to `url` (`postgres://user:password@host:port/database`, or
    /// `postgres:///database?host=/run/postgresql` for a unix socket) and brings the schema up
    /// to date. Migrations take PostgreSQL's advisory lock, so two origins starting at once
    /// migrate one after the other.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Url(format!("{:?}: {e}", redact_url(url))))?
            .application_name("arbor-origin");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        sqlx::migrate::Migrator::new(Embedded)
            .await?
            .run(&pool)
            .await?;
        Ok(SqlStore { pool })
    }
}
