//! A PostgreSQL database of a test's own, created through `TEST_DATABASE_URL` and dropped after.

use sqlx::{Connection, Executor};

/// A database `okla_test_<uuid>` on the server `admin_url` names, dropped `WITH (FORCE)` on
/// drop (also when the test panics), so connections a failed test left open do not keep it.
pub struct PostgresDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PostgresDatabase {
    /// Creates the database through `admin_url` (a URL of any database on the server).
    pub async fn create(admin_url: &str) -> PostgresDatabase {
        let name = format!("okla_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|error| panic!("cannot connect to {admin_url}: {error}"));
        admin
            .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE \"{name}\""
            ))))
            .await
            .unwrap_or_else(|error| panic!("cannot create database {name}: {error}"));
        let _ = admin.close().await;
        let mut url = url::Url::parse(admin_url).expect("the admin URL is a URL");
        url.set_path(&format!("/{name}"));
        PostgresDatabase {
            admin_url: admin_url.to_owned(),
            name,
            url: url.to_string(),
        }
    }

    /// The new database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop may run inside the test's runtime, which cannot be blocked on; a thread with a
        // runtime of its own does the work, and we wait for it so the database is gone when the
        // test returns.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build a runtime");
            runtime
                .block_on(async {
                    let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                    admin
                        .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))))
                        .await?;
                    admin.close().await
                })
                .map_err(|error| format!("cannot drop test database {name}: {error}"))
        });
        match dropper.join() {
            Ok(Ok(())) => {}
            // Panicking in Drop while a failed test unwinds would abort the whole binary.
            Ok(Err(message)) => eprintln!("{message}"),
            Err(_) => eprintln!("the thread dropping a test database panicked"),
        }
    }
}
