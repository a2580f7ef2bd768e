"""vaekit-zoo: learned priors, 8-bit likelihoods and an adversarial kind for vaekit."""
