"""The Spark engine (optional extra ``clvcast[spark]``): train and predict on Apache Spark.

:mod:`clvcast.spark.session` starts Spark (clear errors without pyspark or Java);
:mod:`clvcast.spark.engine` reads and summarises purchase logs in Spark SQL and scores them
in Spark tasks with the local engine's code, so both engines give the same scored table.
"""
