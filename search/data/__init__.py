"""Datasets: options (torch-free), the registry of loaders, torchvision sets, ImageFolder trees
and their decode cache, the one image reader, and the input format a model is trained on."""
