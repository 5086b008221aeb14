"""The daemon's streams spread over a Ray cluster (`serve --cluster ray[://ADDRESS]`, `pip install
"streamgenre[cluster]"`): `coordinator.py` cuts them into shards and serves their messages as one daemon's; `shard.py`
runs today's pipeline on one shard, in a Ray actor."""

SHARD_SIZE = 100  # streams per shard: one shard fills one CPU core with the paper model (250 streams on 2 cores)
