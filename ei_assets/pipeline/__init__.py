"""The pipeline without Dagster: a refresh (discover, fetch, archive, flatten) over a data dir
(`refresh`), saving one snapshot into the raw archive and the lake (`saving`), rebuilding the lake
and the warehouse from the archive (`rebuild`), and the data dir that composes storage and
warehouse (`data_dir`). Import from those modules: this package loads none of them by itself, so
a command that needs one part does not pay for the others."""
