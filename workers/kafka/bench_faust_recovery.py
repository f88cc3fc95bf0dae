"""`clientshift run` with Faust's own table-recovery loop (workers.kafka.faust_fixes without fix 12's loop):
what `clientshift bench recovery` compares the worker's recovery with."""

from workers.kafka import faust_fixes

faust_fixes.FASTER_RECOVERY_LOOP = False

if __name__ == "__main__":
    from workers.cli import app

    app(["run"], prog_name="clientshift")
