"""The daemon's streams spread over shards: worker processes on this machine (`serve --workers N`) or a Ray cluster
(`serve --cluster ray[://ADDRESS]`, `pip install "streamgenre[cluster]"`). `coordinator.py` cuts them into shards and
serves their messages as one daemon's; `shard.py` runs today's pipeline on one shard, in a worker process
(`process_shards.py`) or a Ray actor (`ray_shards.py`)."""

SHARD_SIZE = 100  # streams per Ray shard: one shard fills one CPU core with the paper model (250 streams on 2 cores)
SINGLE_PROCESS_STREAMS = 50  # `workers = "auto"` keeps up to this many streams in one process
SINGLE_PROCESS_CORES = 2  # and every stream of a machine with this many cores or fewer (docs/speed.md)
