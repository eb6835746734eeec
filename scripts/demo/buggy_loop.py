"""The silent cached-result bug: every iteration calls the step under one name.

Iteration 1 stores its result under "process-item"; iterations 2..n find that
row and silently get iteration 1's result. zart-lint reports ZRT001 here.
"""

from zart import durable, step


@step("process-item")
async def process_item(item: str) -> str:
    return item.upper()


@durable("buggy-batch")
async def process_all(items: list[str]) -> list[str]:
    results = []
    for item in items:
        results.append(await process_item(item))
    return results
