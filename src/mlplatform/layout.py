"""Where everything lives in the data bucket. One place, so DAGs, the service and the
docs agree. See the README's "Data lake layout"."""

LANDING = "landing/"  # raw deliveries, unchanged: landing/<source>/<file>
QUARANTINE = "quarantine/"  # rows that failed validation, with the reason
CLEAN = "clean/"  # validated and cleaned data: clean/<dataset_version>/data.parquet
SPLITS = "splits/"  # splits/<dataset_version>/{train,test}.parquet
MANIFEST = "manifest/current.json"  # which dataset version is current; written last
BATCH_INCOMING = "batch/incoming/"  # files waiting to be scored
BATCH_OUTPUT = "batch/output/"  # predictions as Parquet
BATCH_DONE = "batch/done/"  # scored input files
PREDICTION_LOG = "predictions/log/"  # every online prediction, partitioned by date
