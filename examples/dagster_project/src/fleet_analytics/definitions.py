from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    # The project's own executor: ei_assets sets none, so its definitions merge with it.
    executor = dg.Definitions(executor=dg.multiprocess_executor.configured({"max_concurrent": 2}))
    return dg.Definitions.merge(dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
                                executor)
