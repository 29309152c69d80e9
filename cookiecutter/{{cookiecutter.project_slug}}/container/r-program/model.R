# Yours: the model. Replace the example below with your own; keep these names.
#
#   hyperparameter_schema          each hyperparameter's type, default and range
#   new_model(data, hp, previous)  the state before the first epoch; `previous` is the
#                                  model to start from (incremental training) or NULL
#   fit_epoch(state, data, hp)     one epoch of training; returns the new state
#   model_metrics(state, data)     named numbers, printed per epoch and channel
#   save_model(state, dir)         write the model into the directory `dir`
#   load_model(dir)                read it back from `dir` (what serving gets)
#   n_features(model)              how many features a row must have
#   predict_rows(model, x)         a numeric matrix in, one prediction per row out
#   model_classes(model)           a classifier's labels, NULL for a regressor (evaluate
#                                  scores either kind)
#   predict_probabilities(model, x) a classifier's class probabilities, a column per label
#                                  of model_classes (evaluate's ROC curves and AUC); optional
#
# Training calls new_model, then fit_epoch once per epoch (the state is
# checkpointed after each, and `state$epoch` counts them); serving calls
# load_model once per R process and predict_rows per request. `data` is what
# read_table() in data.R returns: list(labels, features).

hyperparameter_schema <- list(
  epochs = hp_integer(100L, min = 1L, max = 1000000L),
  learning_rate = hp_double(0.5, min = 1e-06, max = 10),
  l2 = hp_double(1e-04, min = 0, max = 10),
  seed = hp_integer(1L, min = 0L)
)

# ---- the example: multinomial logistic regression by gradient descent. Replace from here. ----

#' The state before the first epoch.
#' @param data list(labels, features) from read_table()
#' @param hp the typed hyperparameters
#' @param previous a model from load_model() to continue from, or NULL
new_model <- function(data, hp, previous = NULL) {
  classes <- sort(unique(data$labels))
  if (!is.null(previous)) {
    if (!identical(previous$classes, classes) || ncol(data$features) != n_features(previous)) {
      stop(sprintf("the previous model predicts %s from %d features; the data has %s and %d",
                   paste(previous$classes, collapse = "/"), n_features(previous),
                   paste(classes, collapse = "/"), ncol(data$features)), call. = FALSE)
    }
    return(c(previous[c("classes", "center", "scale", "weights")], list(epoch = 0L)))
  }
  center <- colMeans(data$features)
  scale <- apply(data$features, 2, stats::sd)
  scale[!is.finite(scale) | scale == 0] <- 1
  set.seed(hp$seed)
  weights <- matrix(stats::rnorm((ncol(data$features) + 1) * length(classes), sd = 0.01),
                    ncol = length(classes))
  list(classes = classes, center = center, scale = scale, weights = weights, epoch = 0L)
}

#' The standardised features with an intercept column.
design_matrix <- function(model, x) {
  cbind(1, sweep(sweep(x, 2, model$center), 2, model$scale, "/"))
}

#' Class probabilities, one row per row of `x`.
class_probabilities <- function(model, x) {
  scores <- design_matrix(model, x) %*% model$weights
  scores <- exp(scores - apply(scores, 1, max))
  scores / rowSums(scores)
}

#' One epoch: a step of gradient descent on the cross-entropy with an L2 penalty.
fit_epoch <- function(state, data, hp) {
  x <- design_matrix(state, data$features)
  y <- outer(data$labels, state$classes, "==") * 1
  gradient <- crossprod(x, class_probabilities(state, data$features) - y) / nrow(x) +
    hp$l2 * state$weights
  state$weights <- state$weights - hp$learning_rate * gradient
  state$epoch <- state$epoch + 1L
  state
}

#' Loss and accuracy of the model on `data`.
model_metrics <- function(state, data) {
  p <- class_probabilities(state, data$features)
  truth <- match(data$labels, state$classes)
  picked <- p[cbind(seq_along(truth), truth)]
  picked[is.na(picked)] <- 0  # a label the model never saw
  c(loss = -mean(log(pmax(picked, 1e-15))),
    accuracy = mean(!is.na(truth) & max.col(p, ties.method = "first") == truth))
}

#' Write the model's parameters (not the training state) as model.rds.
save_model <- function(state, dir) {
  saveRDS(state[c("classes", "center", "scale", "weights")], file.path(dir, "model.rds"))
}

#' Read the model save_model() wrote.
load_model <- function(dir) {
  path <- file.path(dir, "model.rds")
  if (!file.exists(path)) stop(sprintf("%s does not exist", path), call. = FALSE)
  readRDS(path)
}

#' How many features a row must have.
n_features <- function(model) nrow(model$weights) - 1L

#' The predicted class of each row of `x`.
predict_rows <- function(model, x) {
  model$classes[max.col(class_probabilities(model, x), ties.method = "first")]
}

#' The class labels, in the order of predict_probabilities' columns.
model_classes <- function(model) model$classes

#' The probability of each class (columns) for each row of `x`.
predict_probabilities <- function(model, x) class_probabilities(model, x)
