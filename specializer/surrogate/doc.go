// Package surrogate holds the accuracy predictors of the specializer: models
// that map an architecture's feature vector (its integer encoding) to
// accuracy so the search can rank thousands of candidates without training
// them. As in Neural Architecture Transfer (Lu et al., TPAMI 2021) and
// NSGANetV2 (Lu et al., ECCV 2020) it offers a bagged ensemble of cubic radial
// basis function interpolants with a linear tail (the pySOT form, Eriksson et
// al. 2019), a Gaussian process (Rasmussen and Williams 2006) with a Matérn 5/2
// or squared-exponential kernel whose length scale and noise maximise the log
// marginal likelihood with the signal variance profiled out, a small
// multilayer perceptron trained by Adam (Kingma and Ba 2015) with early
// stopping, and a random forest of CART trees (Breiman 2001); all are seeded
// and deterministic. Because the search only needs the order of candidates,
// models are compared by Kendall's rank correlation (tau-b, which handles
// ties) under k-fold cross-validation, and Select implements NAT's adaptive
// switching: the candidate with the best mean minus standard deviation of tau
// is refitted on all data and used.
package surrogate
