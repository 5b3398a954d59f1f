"""The transport seam: drivers that move bytes for the clients and decide nothing.

:mod:`.base` holds the request value, the two protocols and the error mapping;
:mod:`.httpx` drives httpx2 (the default) or a caller's httpx client; :mod:`.aiohttp`
drives aiohttp (the optional fast async driver, imported only when chosen).
"""
