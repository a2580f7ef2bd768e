"""Readers behind the built-in dataset plugins (registered in ``vaekit.builtin.datasets``).

One module per kind of data: ``folder`` (image folders, labels CSV), ``celeba``
(the CelebA layout), ``idx`` (MNIST-style IDX files), ``arrays`` (.npz, .npy,
HDF5), and ``cache`` (decode image files once into a memory-mapped uint8 array).
"""
