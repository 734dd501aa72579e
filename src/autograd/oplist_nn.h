/* nn-layer ops; see oplist.h for the checklist. */
#ifndef SER_AUTOGRAD_OPLIST_NN_H
#define SER_AUTOGRAD_OPLIST_NN_H

#define SER_OPS_NN(X)

#endif
