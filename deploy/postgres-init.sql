-- run once by the postgres image on a new data directory: the Prefect server's own database
CREATE DATABASE prefect OWNER switchboard;
