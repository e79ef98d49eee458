"""A whole cohort: one model over hundreds or thousands of scans, sharded, resumable, with a manifest and a QC report.

- :mod:`.shard`: which inputs this process takes (``--part I --parts K``, or ``RANK`` / ``WORLD_SIZE`` of a launcher):
  every input exactly once over the parts, with nothing shared but the output folder.
- :mod:`.records`: one record per input, written atomically beside the outputs when the scan ends (done or failed);
  a rerun skips a scan whose output the record vouches for (same model checksum, same output checksum), and
  ``manifest.csv`` is made from the records.
- :mod:`.run`: :func:`predict_cohort`, in this process or in N worker processes; a bad scan is a failed row, not the
  end of the run.
- :mod:`.qc`: the outliers of a cohort and ``qc.html``, a self-contained report.
"""
