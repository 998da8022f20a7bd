//! Query filters: which records [`crate::AuditLog::query`] returns, and
//! the same test applied to exported records ([`Filter::matches`]).
//!
//! Time bounds are inclusive and may be any RFC 3339 time; they are
//! converted to the log's canonical timestamp form, which compares
//! correctly as a string, so SQL and [`Filter::matches`] agree.

use sqlx::{QueryBuilder, Sqlite};

use crate::error::AuditError;
use crate::record::Record;
use crate::timefmt;

/// Records returned by a query when no limit is given.
pub const DEFAULT_LIMIT: u32 = 1000;
/// Most records one query returns.
pub const MAX_LIMIT: u32 = 10_000;

/// Which records a query returns. Empty strings count as unset (as in the
/// `sigil.v1` query message).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// RFC 3339, inclusive.
    pub from_time: Option<String>,
    /// RFC 3339, inclusive.
    pub to_time: Option<String>,
    pub key_id: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// An exact outcome (`refused:policy`), or a class (`refused`, `error`)
    /// matching every kind of it.
    pub outcome: Option<String>,
    /// Only records with a greater sequence (paging).
    pub after_sequence: Option<u64>,
    /// Unset or 0: [`DEFAULT_LIMIT`]; capped at [`MAX_LIMIT`].
    pub limit: Option<u32>,
}

impl Filter {
    pub fn from_time(mut self, t: impl Into<String>) -> Self {
        self.from_time = Some(t.into());
        self
    }
    pub fn to_time(mut self, t: impl Into<String>) -> Self {
        self.to_time = Some(t.into());
        self
    }
    pub fn key_id(mut self, v: impl Into<String>) -> Self {
        self.key_id = Some(v.into());
        self
    }
    pub fn actor(mut self, v: impl Into<String>) -> Self {
        self.actor = Some(v.into());
        self
    }
    pub fn action(mut self, v: impl Into<String>) -> Self {
        self.action = Some(v.into());
        self
    }
    pub fn outcome(mut self, v: impl Into<String>) -> Self {
        self.outcome = Some(v.into());
        self
    }
    pub fn after_sequence(mut self, v: u64) -> Self {
        self.after_sequence = Some(v);
        self
    }
    pub fn limit(mut self, v: u32) -> Self {
        self.limit = Some(v);
        self
    }

    /// The number of records a query with this filter returns at most.
    pub fn effective_limit(&self) -> u32 {
        match self.limit {
            None | Some(0) => DEFAULT_LIMIT,
            Some(n) => n.min(MAX_LIMIT),
        }
    }

    /// True if `record` passes every condition but the limit (for filtering
    /// exported files the way [`crate::AuditLog::query`] does).
    pub fn matches(&self, record: &Record) -> Result<bool, AuditError> {
        let c = self.compile()?;
        Ok(c.from_time
            .as_deref()
            .is_none_or(|t| record.timestamp.as_str() >= t)
            && c.to_time
                .as_deref()
                .is_none_or(|t| record.timestamp.as_str() <= t)
            && c.key_id.is_none_or(|v| record.key_id == v)
            && c.actor.is_none_or(|v| record.actor == v)
            && c.action.is_none_or(|v| record.action == v)
            && c.outcome.is_none_or(|v| {
                record.outcome == v
                    || record
                        .outcome
                        .strip_prefix(v)
                        .is_some_and(|rest| rest.starts_with(':'))
            })
            && c.after_sequence.is_none_or(|s| record.sequence > s))
    }

    /// The SELECT of the records this filter passes, in sequence order, limited.
    pub(crate) fn select(&self) -> Result<QueryBuilder<Sqlite>, AuditError> {
        let c = self.compile()?;
        let after = match c.after_sequence {
            Some(s) => i64::try_from(s).unwrap_or(i64::MAX),
            None => 0,
        };
        let mut q = QueryBuilder::<Sqlite>::new(concat!(
            "SELECT ",
            record_columns!(),
            " FROM audit_records WHERE sequence > "
        ));
        q.push_bind(after);
        if let Some(t) = c.from_time {
            q.push(" AND timestamp >= ").push_bind(t);
        }
        if let Some(t) = c.to_time {
            q.push(" AND timestamp <= ").push_bind(t);
        }
        for (column, value) in [
            ("key_id", c.key_id),
            ("actor", c.actor),
            ("action", c.action),
        ] {
            if let Some(v) = value {
                q.push(format!(" AND {column} = ")).push_bind(v.to_owned());
            }
        }
        if let Some(v) = c.outcome {
            let class = format!("{v}:");
            q.push(" AND (outcome = ")
                .push_bind(v.to_owned())
                .push(" OR substr(outcome, 1, ")
                .push_bind(i64::try_from(class.len()).unwrap_or(i64::MAX))
                .push(") = ")
                .push_bind(class)
                .push(")");
        }
        q.push(" ORDER BY sequence LIMIT ")
            .push_bind(i64::from(self.effective_limit()));
        Ok(q)
    }

    fn compile(&self) -> Result<CompiledFilter<'_>, AuditError> {
        fn set(v: &Option<String>) -> Option<&str> {
            v.as_deref().filter(|s| !s.is_empty())
        }
        let time = |v: &Option<String>, lower: bool| {
            set(v)
                .map(|s| timefmt::bound(s, lower).map_err(AuditError::InvalidFilter))
                .transpose()
        };
        Ok(CompiledFilter {
            from_time: time(&self.from_time, true)?,
            to_time: time(&self.to_time, false)?,
            key_id: set(&self.key_id),
            actor: set(&self.actor),
            action: set(&self.action),
            outcome: set(&self.outcome),
            after_sequence: self.after_sequence,
        })
    }
}

pub(crate) struct CompiledFilter<'a> {
    from_time: Option<String>,
    to_time: Option<String>,
    key_id: Option<&'a str>,
    actor: Option<&'a str>,
    action: Option<&'a str>,
    outcome: Option<&'a str>,
    after_sequence: Option<u64>,
}
