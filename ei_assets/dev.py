"""`make dev`: the Dagster UI on 127.0.0.1:3000 (EI_UI_PORT), on the real API when EI_API_KEY is set, else on
the bundled simulator (which then retrains a block every 10 minutes, so the UI has history)."""

import os
import subprocess
import sys

from ei_assets.dagster.automation import DEV_MODE
from ei_assets.dagster.run import ensure_instance_home
from ei_assets.memory import tune_process
from ei_assets.settings import DEFAULT_DATA_DIR, DEFAULT_SIM_PORT
from ei_assets.simulator import Simulator, WorldConfig


def main() -> int:
    tune_process()  # ours, and through the environment the processes `dagster dev` starts
    env = dict(os.environ)
    data_dir = env.get("EI_DATA_DIR") or DEFAULT_DATA_DIR
    env["DAGSTER_HOME"] = ensure_instance_home(
        env.get("DAGSTER_HOME") or os.path.join(os.path.abspath(data_dir), "dagster_home"))
    simulator = None
    if not env.get("EI_API_KEY"):
        simulator = Simulator(WorldConfig(profiling_seconds=120.0),
                              port=int(env.get("SIM_PORT") or DEFAULT_SIM_PORT),
                              retrain_every=600.0).start()
        env["EI_API_URL"] = simulator.url
        env["EI_API_KEY"] = ",".join(simulator.api_keys)
        env[DEV_MODE] = "1"  # the dev_refresh schedule starts on
        print(f"EI_API_KEY is not set: using the Studio simulator on {simulator.url}; it retrains a "
              "block every 10 minutes and dev_refresh fetches every 5. To refresh by hand:")
        print(f"  export EI_API_URL={simulator.url}")
        print(f"  export EI_API_KEY={env['EI_API_KEY']}")
        print(f"  export EI_DATA_DIR={data_dir}")
        print("  .venv/bin/ei-assets refresh")
    port = env.get("EI_UI_PORT") or "3000"
    print(f"Dagster UI on http://127.0.0.1:{port} (DAGSTER_HOME={env['DAGSTER_HOME']}); "
          "Ctrl-C to stop", flush=True)
    command = [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml",
               "-h", "127.0.0.1", "-p", port]
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 0
    finally:
        if simulator is not None:
            simulator.stop()


if __name__ == "__main__":
    sys.exit(main())
