//! TLS to PostgreSQL: `?sslmode=require` with the test CA in `store.ca_file` connects over TLS
//! (PostgreSQL's own view of the connection says so); without the CA the certificate is refused.

use super::{pg, Fixture};
use crate::store::*;

fn with_tls(fx: &Fixture, ca_file: Option<std::path::PathBuf>) -> PgConnect {
    let Fixture::Postgres(connect) = fx else {
        panic!("a PostgreSQL fixture")
    };
    PgConnect {
        url: format!("{}?sslmode=require", connect.url),
        ca_file,
        ..connect.clone()
    }
}

#[tokio::test]
async fn the_store_speaks_tls_to_postgresql_and_checks_its_certificate() {
    let fx = Fixture::postgres().await;
    let ca = pg::ca_file().await;
    let store = PgStore::open(&with_tls(&fx, Some(ca))).await.unwrap();
    store.enqueue(super::entry(1, 10)).await.unwrap();
    let Fixture::Postgres(plain) = &fx else {
        unreachable!()
    };
    let mut config: tokio_postgres::Config = plain.url.parse().unwrap();
    if let Some(p) = &plain.password {
        config.password(secrecy::ExposeSecret::expose_secret(p));
    }
    let database = config.get_dbname().unwrap_or_default().to_string();
    let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT count(*), bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.application_name = 'flowgate' AND a.datname = $1",
            &[&database],
        )
        .await
        .unwrap();
    let (connections, all_tls): (i64, Option<bool>) = (row.get(0), row.get(1));
    assert!(connections > 0, "the store's connections are seen");
    assert_eq!(all_tls, Some(true), "every one of them over TLS");

    let refused = PgStore::open(&with_tls(&fx, None))
        .await
        .err()
        .expect("refused");
    let text = crate::error::error_chain(&refused);
    assert!(
        text.contains("certificate") || text.contains("UnknownIssuer"),
        "{text}"
    );
}
