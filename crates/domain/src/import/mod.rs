//! Importing forwarding rules from CSV (`email,forward`), streamed chunk by chunk.
//!
//! The HTTP import endpoint and `mailfwd import` both use [`CsvImport`], so a CSV file
//! means the same thing whichever way it arrives.

mod csv_lines;

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use thiserror::Error;

use crate::address::EmailAddress;
use crate::expansion::{ExpansionLimits, check_rules};
use crate::rule::{RecipientPattern, Rule};
use crate::rule_store::{RuleError, RuleStore};
use csv_lines::{Line, LineSplitter};

/// The default of [`ImportOptions::atomic_max_rows`]: an atomic import of this many
/// rows peaks at about 70 MB (100,000 at 130 MB), under the 100 MB an import may take.
pub const DEFAULT_ATOMIC_MAX_ROWS: u64 = 50_000;

/// How an import behaves.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Import nothing unless every row is valid.
    pub atomic: bool,
    /// The most rows an atomic import takes. An atomic import checks every rule before
    /// it writes one, so it holds them all in memory (about 1.4 KB a row with the
    /// expansion check); this bounds that memory, whoever sends the file.
    pub atomic_max_rows: u64,
    /// The most destinations a rule may have.
    pub max_destinations: usize,
    /// How far a rule may expand through others (with the rules stored and those of
    /// the same batch); a rule that would loop or run past these is rejected.
    pub expansion: ExpansionLimits,
    /// Distinct patterns written per store call when not atomic.
    pub batch_size: usize,
    /// Row errors kept in the report; the rest are only counted.
    pub max_reported_errors: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            atomic: false,
            atomic_max_rows: DEFAULT_ATOMIC_MAX_ROWS,
            max_destinations: crate::rule::DEFAULT_MAX_DESTINATIONS,
            expansion: ExpansionLimits::default(),
            batch_size: 2_000,
            max_reported_errors: 1_000,
        }
    }
}

/// One rejected row: where, which column, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    /// `email`, `forward`, or `row` when the line as a whole is wrong.
    pub column: &'static str,
    /// What is wrong, for a person.
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Data rows read (not counting the header and blank lines).
    pub rows: u64,
    /// Rows whose rule was written.
    pub imported_rows: u64,
    /// Rows rejected.
    pub rejected_rows: u64,
    /// Distinct rules created or replaced.
    pub rules_written: u64,
    /// The first rejected rows, in order.
    pub errors: Vec<RowError>,
    /// True when more rows were rejected than `errors` lists.
    pub errors_truncated: bool,
}

/// Why an import stopped before the end.
#[derive(Debug, Error)]
pub enum ImportError {
    /// The first line is not a header naming the `email` and `forward` columns.
    #[error("line 1 must be the header 'email,forward'; {0}")]
    BadHeader(String),
    /// An atomic import has more rows than it may hold; nothing was written.
    #[error(
        "an atomic import takes at most {max_rows} rows and this file has more; nothing was \
         imported: split the file, or import it without atomic (which writes as it reads)"
    )]
    AtomicTooLarge {
        /// The most rows an atomic import takes.
        max_rows: u64,
    },
    /// The store failed; batches written before the failure stay written unless atomic.
    #[error("the import stopped after {rules_written} rules were written: {source}")]
    Storage {
        /// Rules written before the failure.
        rules_written: u64,
        /// The store's error.
        source: RuleError,
    },
}

#[derive(Debug)]
struct PendingRule {
    pattern: RecipientPattern,
    destinations: Vec<EmailAddress>,
    first_line: u64,
    rows: u64,
}

#[derive(Debug, Clone, Copy)]
struct Columns {
    email: usize,
    forward: usize,
}

/// A CSV import in progress: feed it chunks, then finish it.
pub struct CsvImport<'a> {
    store: &'a dyn RuleStore,
    options: ImportOptions,
    splitter: LineSplitter,
    columns: Option<Columns>,
    pending: Vec<PendingRule>,
    pending_index: HashMap<String, usize>,
    /// Fingerprints of the keys already written by this import, so a pattern whose rows
    /// are not adjacent gets its destinations merged instead of replaced. 64-bit hashes
    /// rather than the keys: a million-row import then keeps ~16 MB here, not ~80 MB (a
    /// collision, about 1 in 30 million at a million rules, would merge one rule with
    /// the stored one instead of replacing it).
    written: HashSet<u64>,
    report: ImportReport,
}

impl<'a> CsvImport<'a> {
    /// Starts an import into `store`.
    #[must_use]
    pub fn new(store: &'a dyn RuleStore, options: ImportOptions) -> Self {
        CsvImport {
            store,
            options,
            splitter: LineSplitter::default(),
            columns: None,
            pending: Vec::new(),
            pending_index: HashMap::new(),
            written: HashSet::new(),
            report: ImportReport::default(),
        }
    }

    /// Feeds the next chunk of the file.
    ///
    /// # Errors
    /// [`ImportError::BadHeader`] or [`ImportError::Storage`]; the import is over then.
    pub async fn feed(&mut self, chunk: &[u8]) -> Result<(), ImportError> {
        let mut lines = Vec::new();
        self.splitter.feed(chunk, |n, line| lines.push((n, line)));
        self.take_lines(lines)?;
        if !self.options.atomic && self.pending.len() >= self.options.batch_size {
            self.flush().await?;
        }
        Ok(())
    }

    /// Ends the file, writes what is left and returns the report.
    ///
    /// # Errors
    /// [`ImportError::BadHeader`] or [`ImportError::Storage`].
    pub async fn finish(mut self) -> Result<ImportReport, ImportError> {
        let mut lines = Vec::new();
        self.splitter.finish(|n, line| lines.push((n, line)));
        self.take_lines(lines)?;
        if self.columns.is_none() {
            return Err(ImportError::BadHeader("the file is empty".to_owned()));
        }
        if self.options.atomic {
            let rules = self.build_rules().await?;
            if self.report.rejected_rows == 0 {
                self.write(rules).await?;
            } else {
                self.report.imported_rows = 0;
            }
        } else {
            self.flush().await?;
        }
        Ok(self.report)
    }

    fn take_lines(&mut self, lines: Vec<(u64, Line)>) -> Result<(), ImportError> {
        for (number, line) in lines {
            match (self.columns, line) {
                (_, Line::Blank) => {}
                (None, Line::Fields(names)) => self.columns = Some(header(&names)?),
                (None, Line::Malformed(why)) => return Err(ImportError::BadHeader(why.to_owned())),
                (Some(_), Line::Malformed(why)) => {
                    self.report.rows += 1;
                    self.reject(number, "row", why.to_owned(), 1);
                }
                (Some(columns), Line::Fields(fields)) => {
                    self.report.rows += 1;
                    self.take_row(number, columns, &fields);
                }
            }
            if self.options.atomic && self.report.rows > self.options.atomic_max_rows {
                return Err(ImportError::AtomicTooLarge {
                    max_rows: self.options.atomic_max_rows,
                });
            }
        }
        Ok(())
    }

    fn take_row(&mut self, line: u64, columns: Columns, fields: &[String]) {
        let (Some(email), Some(forward)) = (fields.get(columns.email), fields.get(columns.forward))
        else {
            let reason = format!(
                "expected {} fields, found {}",
                columns.email.max(columns.forward) + 1,
                fields.len()
            );
            return self.reject(line, "row", reason, 1);
        };
        let pattern = match RecipientPattern::parse(email) {
            Ok(pattern) => pattern,
            Err(e) => return self.reject(line, "email", format!("'{email}': {e}"), 1),
        };
        let mut destinations = Vec::new();
        for part in forward.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            match EmailAddress::parse(part) {
                Ok(address) => destinations.push(address),
                Err(e) => return self.reject(line, "forward", format!("'{part}': {e}"), 1),
            }
        }
        if destinations.is_empty() {
            return self.reject(line, "forward", "no destination address".to_owned(), 1);
        }
        let key = pattern.key();
        if let Some(&index) = self.pending_index.get(&key) {
            let pending = &mut self.pending[index];
            pending.destinations.extend(destinations);
            pending.rows += 1;
        } else {
            self.pending_index.insert(key, self.pending.len());
            self.pending.push(PendingRule {
                pattern,
                destinations,
                first_line: line,
                rows: 1,
            });
        }
    }

    fn reject(&mut self, line: u64, column: &'static str, reason: String, rows: u64) {
        self.report.rejected_rows += rows;
        if self.report.errors.len() < self.options.max_reported_errors {
            self.report.errors.push(RowError {
                line,
                column,
                reason,
            });
        } else {
            self.report.errors_truncated = true;
        }
    }

    /// Turns the pending rows into rules, merging with rules this import wrote earlier,
    /// and rejects those that would forward in a loop or run away.
    async fn build_rules(&mut self) -> Result<Vec<Rule>, ImportError> {
        let mut rules = Vec::with_capacity(self.pending.len());
        let mut origins = HashMap::with_capacity(self.pending.len());
        self.pending_index.clear();
        for mut pending in std::mem::take(&mut self.pending) {
            if self.written.contains(&fingerprint(&pending.pattern.key())) {
                match self.store.get(&pending.pattern).await {
                    Ok(earlier) => pending
                        .destinations
                        .splice(0..0, earlier.into_parts().1)
                        .for_each(drop),
                    Err(RuleError::NotFound(_)) => {}
                    Err(source) => return Err(self.storage_error(source)),
                }
            }
            match Rule::new(
                pending.pattern,
                pending.destinations,
                self.options.max_destinations,
            ) {
                Ok(rule) => {
                    origins.insert(rule.pattern().key(), (pending.first_line, pending.rows));
                    rules.push(rule);
                }
                Err(e) => self.reject(pending.first_line, "forward", e.to_string(), pending.rows),
            }
        }
        let faults = check_rules(self.store, &rules, self.options.expansion)
            .await
            .map_err(|source| self.storage_error(source))?;
        for (pattern, cut) in &faults {
            if let Some(&(line, rows)) = origins.get(&pattern.key()) {
                self.reject(line, "forward", cut.to_string(), rows);
            }
        }
        let faulty: HashSet<String> = faults.iter().map(|(pattern, _)| pattern.key()).collect();
        rules.retain(|rule| !faulty.contains(&rule.pattern().key()));
        self.report.imported_rows += rules
            .iter()
            .filter_map(|rule| origins.get(&rule.pattern().key()))
            .map(|&(_, rows)| rows)
            .sum::<u64>();
        Ok(rules)
    }

    async fn flush(&mut self) -> Result<(), ImportError> {
        let rules = self.build_rules().await?;
        self.write(rules).await
    }

    async fn write(&mut self, rules: Vec<Rule>) -> Result<(), ImportError> {
        if rules.is_empty() {
            return Ok(());
        }
        let keys: Vec<u64> = rules
            .iter()
            .map(|r| fingerprint(&r.pattern().key()))
            .collect();
        let written = self
            .store
            .upsert_many(rules)
            .await
            .map_err(|source| self.storage_error(source))?;
        self.report.rules_written += written;
        self.written.extend(keys);
        Ok(())
    }

    fn storage_error(&self, source: RuleError) -> ImportError {
        ImportError::Storage {
            rules_written: self.report.rules_written,
            source,
        }
    }
}

/// A key's fingerprint: SipHash with fixed keys, the same in every run.
fn fingerprint(key: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

fn header(names: &[String]) -> Result<Columns, ImportError> {
    let find = |wanted: &str| {
        names
            .iter()
            .position(|n| n.trim().eq_ignore_ascii_case(wanted))
    };
    match (find("email"), find("forward")) {
        (Some(email), Some(forward)) => Ok(Columns { email, forward }),
        _ => Err(ImportError::BadHeader(format!(
            "found '{}'",
            names.join(",")
        ))),
    }
}

#[cfg(test)]
#[path = "import_tests.rs"]
mod tests;
