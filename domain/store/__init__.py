"""Storage adapters of the write side: the library's recorders and the rows written beside them.

`records` is the abstract part (stored-record types and the `EventStore` interface);
`sql` the SQL both databases share; `sqlite` and `postgres` one module per database;
`memory` the same interface in this process's memory (`memory:`), for tests without a
database file; `config` turns a database URL into the library's settings; `tokens` keeps
API tokens.
"""
