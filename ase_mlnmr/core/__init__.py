"""The numerical core: everything compiled or on the prediction hot path.

Neighbour search (``_neighbours``, :mod:`.neighbours`), the radial basis and its
integral tables (:mod:`.radial_basis`), real Clebsch–Gordan coefficients
(:mod:`.clebsch_gordan`), Cartesian ↔ spherical tensors (:mod:`.spherical_tensors`) and
the SOAP / λ-SOAP kernels (``_soap_core``, C-callable through ``mlnmr_core.h`` and the
generated ``_soap_core_api.h``). Nothing here imports ASE: the same code serves the ASE
provider, the trajectory tools and the LAMMPS plugin.
"""
