"""One SQLMesh execution, deciding kept apart from doing (as SQLMesh's own `plan/` package does).

`decision` chooses, from values read beforehand, what SQLMesh is asked to do (run or plan, which
models, what to restate, how due intervals get filled); `evaluator` makes those SQLMesh calls and
re-plans around failures; `outcomes` turns what the console recorded into each model's outcome.
"""
