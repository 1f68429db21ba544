use super::*;
use crate::memory::MemoryRuleStore;

async fn import(
    store: &MemoryRuleStore,
    chunks: &[&str],
    options: ImportOptions,
) -> Result<ImportReport, ImportError> {
    let mut import = CsvImport::new(store, options);
    for chunk in chunks {
        import.feed(chunk.as_bytes()).await?;
    }
    import.finish().await
}

async fn destinations(store: &MemoryRuleStore, pattern: &str) -> Vec<String> {
    let pattern = RecipientPattern::parse(pattern).expect("valid pattern");
    store
        .get(&pattern)
        .await
        .expect("rule exists")
        .destinations()
        .iter()
        .map(ToString::to_string)
        .collect()
}

const MIXED: &str = "email,forward\n\
    sales@acme.test,alice@gmail.test\n\
    sales@acme.test,bob@corp.test\n\
    not-an-address,x@y.test\n\
    info@acme.test,a@b.test;c@d.test\n\
    bad@acme.test,bad..dot@x.test\n\
    \n\
    loop@acme.test,LOOP@acme.test\n\
    *@acme.test,catch@all.test\n";

#[tokio::test]
async fn valid_rows_are_imported_and_bad_rows_reported_by_line_and_column() {
    let store = MemoryRuleStore::new();
    let report = import(&store, &[MIXED], ImportOptions::default())
        .await
        .expect("import runs");
    assert_eq!(report.rows, 7);
    assert_eq!(report.imported_rows, 4);
    assert_eq!(report.rejected_rows, 3);
    assert_eq!(report.rules_written, 3);
    let places: Vec<(u64, &str)> = report.errors.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(places, vec![(4, "email"), (6, "forward"), (8, "forward")]);
    assert!(
        report.errors[0].reason.contains("not-an-address"),
        "{:?}",
        report.errors[0]
    );
    assert!(
        report.errors[2].reason.contains("cannot forward to itself"),
        "{:?}",
        report.errors[2]
    );
    assert_eq!(
        destinations(&store, "sales@acme.test").await,
        vec!["alice@gmail.test", "bob@corp.test"]
    );
    assert_eq!(
        destinations(&store, "info@acme.test").await,
        vec!["a@b.test", "c@d.test"]
    );
    assert_eq!(
        destinations(&store, "*@acme.test").await,
        vec!["catch@all.test"]
    );
}

#[tokio::test]
async fn atomic_import_writes_nothing_when_a_row_is_bad() {
    let store = MemoryRuleStore::new();
    let options = ImportOptions {
        atomic: true,
        ..ImportOptions::default()
    };
    let report = import(&store, &[MIXED], options.clone())
        .await
        .expect("import runs");
    assert_eq!(
        (
            report.rejected_rows,
            report.imported_rows,
            report.rules_written
        ),
        (3, 0, 0)
    );
    let pattern = RecipientPattern::parse("sales@acme.test").expect("valid");
    assert!(matches!(
        store.get(&pattern).await,
        Err(RuleError::NotFound(_))
    ));

    let good = "email,forward\na@x.test,b@y.test\n";
    let report = import(&store, &[good], options).await.expect("import runs");
    assert_eq!((report.rejected_rows, report.rules_written), (0, 1));
}

#[tokio::test]
async fn an_atomic_import_over_its_row_limit_stops_and_writes_nothing() {
    let store = MemoryRuleStore::new();
    let options = ImportOptions {
        atomic: true,
        atomic_max_rows: 2,
        ..ImportOptions::default()
    };
    let two = "email,forward\na@x.test,b@y.test\nc@x.test,d@y.test\n";
    let report = import(&store, &[two], options.clone())
        .await
        .expect("two fit");
    assert_eq!(report.rules_written, 2);

    let three = "email,forward\ne@x.test,b@y.test\nf@x.test,d@y.test\ng@x.test,h@y.test\n";
    let error = import(&store, &[three], options).await.unwrap_err();
    assert!(matches!(error, ImportError::AtomicTooLarge { max_rows: 2 }));
    assert!(error.to_string().contains("at most 2 rows"), "{error}");
    let pattern = RecipientPattern::parse("e@x.test").expect("valid");
    assert!(matches!(
        store.get(&pattern).await,
        Err(RuleError::NotFound(_))
    ));
}

#[tokio::test]
async fn rows_of_one_pattern_in_different_batches_are_merged() {
    let store = MemoryRuleStore::new();
    let options = ImportOptions {
        batch_size: 1,
        ..ImportOptions::default()
    };
    let chunks = [
        "email,forward\na@x.test,one@y.test\n",
        "b@x.test,z@y.test\n",
        "a@x.test,two@y.test\n",
    ];
    let report = import(&store, &chunks, options).await.expect("import runs");
    assert_eq!(report.imported_rows, 3);
    assert_eq!(
        destinations(&store, "a@x.test").await,
        vec!["one@y.test", "two@y.test"]
    );
}

#[tokio::test]
async fn header_is_required_and_may_reorder_columns() {
    let store = MemoryRuleStore::new();
    let err = import(&store, &["a@x.test,b@y.test\n"], ImportOptions::default()).await;
    assert!(
        matches!(err, Err(ImportError::BadHeader(ref m)) if m.contains("a@x.test")),
        "{err:?}"
    );
    assert!(matches!(
        import(&store, &[""], ImportOptions::default()).await,
        Err(ImportError::BadHeader(_))
    ));
    let report = import(
        &store,
        &["forward,email\nb@y.test,a@x.test"],
        ImportOptions::default(),
    )
    .await
    .expect("ok");
    assert_eq!(report.rules_written, 1);
    assert_eq!(destinations(&store, "a@x.test").await, vec!["b@y.test"]);
}

#[tokio::test]
async fn short_rows_and_error_truncation() {
    let store = MemoryRuleStore::new();
    let options = ImportOptions {
        max_reported_errors: 1,
        ..ImportOptions::default()
    };
    let report = import(&store, &["email,forward\nonly-one-field\nx,y\n"], options)
        .await
        .expect("ok");
    assert_eq!(report.rejected_rows, 2);
    assert_eq!(
        report.errors,
        vec![RowError {
            line: 2,
            column: "row",
            reason: "expected 2 fields, found 1".into()
        }]
    );
    assert!(report.errors_truncated);
}
