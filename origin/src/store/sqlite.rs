//! SQLite, the embedded default: one file, one writer at a time (WAL lets readers go on).

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::sql::SqlStore;
use super::{Embedded, StoreError};

/// How long a writer waits for another one before giving up with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The store on a SQLite file.
pub type SqliteStore = SqlStore<sqlx::Sqlite>;

impl SqlStore<sqlx::Sqlite> {
    /// Opens (creating it if missing) the database at `url` (`sqlite://path/to/origin.db`,
    /// `sqlite:origin.db`; `sqlite::memory:` is per connection, so only for one-connection
    /// pools) and brings its schema up to date.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Url(format!("{url:?}: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // With WAL, NORMAL loses at most the last commits on power loss, never integrity.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(options)
            .await?;
        sqlx::migrate::Migrator::new(Embedded)
            .await?
            .run(&pool)
            .await?;
        Ok(SqlStore { pool })
    }
}
