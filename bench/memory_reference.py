"""Reference for project-memory search: exact top-10 by cosine similarity
over N random unit vectors of D dimensions, in process with numpy (float32
matrix-vector product and argpartition), as a Python stack without a vector
database would do it. Prints one JSON line.

    python bench/memory_reference.py 100000 384 50
"""

import json
import sys
import time

import numpy as np

n, dims, queries = (int(a) for a in sys.argv[1:4])
rng = np.random.default_rng(7)
matrix = rng.random((n, dims), dtype=np.float32) - 0.5
matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
times = []
for q in range(queries + 3):
    query = rng.random(dims, dtype=np.float32) - 0.5
    query /= np.linalg.norm(query)
    started = time.perf_counter()
    scores = matrix @ query
    top = np.argpartition(-scores, 10)[:10]
    top = top[np.argsort(-scores[top])]
    if q >= 3:
        times.append((time.perf_counter() - started) * 1000)
times.sort()
print(json.dumps({"backend": "numpy in process", "chunks": n, "dims": dims,
                  "top10_p50_ms": round(times[len(times) // 2], 1),
                  "top10_p99_ms": round(times[round((len(times) - 1) * 0.99)], 1)}))
