"""Demo executions (generator) and the camera pictures they carry (scenes); not part of the ETL."""
