"""The only room that names files under ``<storage>/<sweep>/``: the folder's layout, the rows' schema, one reader
and one writer (a path or a URI), the run lock and the shared-storage rule."""
