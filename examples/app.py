"""The live view of a soup in the browser: ``solara run examples/app.py``.

Mesa's SolaraViz page with controls for population, attack chance, self-train steps, topology
and seed; a live PCA scatter of the particles coloured by class, the class counts over epochs
and the genealogy. Every browser session gets a soup of its own. ``chemistry.viz.main()`` serves
the same page.
"""

from chemistry.viz import Page, prepare_assets

# Solara's server serves the page's JavaScript from a CDN; where only package registries are
# reachable, put the same files in its cache from the npm registry (once; quick afterwards).
prepare_assets()

page = Page()
