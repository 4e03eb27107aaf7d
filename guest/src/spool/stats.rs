//! Counters a caller may want to export or alert on.

/// Counters of what the spool did that a caller may want to alert on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Segments finished by this process.
    pub segments_written: u64,
    /// Rows in those segments.
    pub rows_written: u64,
    /// Journals left by an earlier process and finished on open.
    pub journals_recovered: u64,
    /// Torn last rows (incomplete lines) dropped while finishing journals.
    pub torn_rows_dropped: u64,
    /// Complete journal lines that failed their checksum (their journal went to quarantine).
    pub corrupt_lines: u64,
    /// Segments moved to `quarantine/` because they failed verification or decoding.
    pub segments_quarantined: u64,
    /// Segments found bad by an inspecting spool ([`super::Spool::inspect`]) and left where
    /// they are for the owner to quarantine.
    pub segments_left_in_place: u64,
    /// Leftover temporaries and orphan sidecars removed on open (derived data only).
    pub temp_files_removed: u64,
    /// Journals found already finished on open (crash after publish) and removed.
    pub finished_journals_removed: u64,
    /// Journals recovery split into pieces because they were too large to finish as one
    /// segment within a call's time bound.
    pub journals_split: u64,
    /// Errors that did not fail the call that met them (a rotation that will be retried, a
    /// journal that could not be removed after its segment was published).
    pub deferred_errors: u64,
}
