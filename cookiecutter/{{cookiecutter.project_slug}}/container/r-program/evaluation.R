# Runtime: you should not need to edit this file.
#
# The figures of a model evaluation, in base R, each as scikit-learn's metrics
# module computes it (the project's tests check them by hand): SageMaker's
# model quality shape, {"multiclass_classification_metrics": {...}} (binary for
# two classes) or {"regression_metrics": {...}}, every figure as {"value": x}.

#' A figure as SageMaker's model quality metrics give it.
figure <- function(x) list(value = unname(as.numeric(x)))

#' Counts: rows the true class, columns the predicted one, both in the order of `classes`.
confusion_counts <- function(truth, predicted, classes) {
  unclass(table(factor(truth, levels = classes), factor(predicted, levels = classes)))
}

#' The points of the ROC curve of `scores` for the logical `positive`, one per distinct score.
#' @return list(fpr, tpr), from 0 to 1
roc_points <- function(positive, scores) {
  order <- order(-scores)
  scores <- scores[order]
  positive <- positive[order]
  last <- c(which(diff(scores) != 0), length(scores))
  tp <- cumsum(positive)[last]
  fp <- last - tp
  list(fpr = c(0, fp / max(fp[length(fp)], 1)), tpr = c(0, tp / max(tp[length(tp)], 1)))
}

#' The area under the ROC curve; NULL when there is no positive or no negative row.
roc_area <- function(positive, scores) {
  if (all(positive) || !any(positive)) return(NULL)
  curve <- roc_points(positive, scores)
  sum(diff(curve$fpr) * (utils::head(curve$tpr, -1) + curve$tpr[-1]) / 2)
}

#' Divide, 0 where the denominator is 0 (scikit-learn's zero_division default).
ratio <- function(part, whole) ifelse(whole > 0, part / pmax(whole, 1e-300), 0)

#' The classification report.
#' @param truth,predicted character vectors
#' @param classes the model's labels
#' @param probabilities a matrix, a column per class, or NULL
classification_metrics <- function(truth, predicted, classes, probabilities = NULL) {
  counts <- confusion_counts(truth, predicted, classes)
  support <- rowSums(counts)
  correct <- diag(counts)
  precision <- ratio(correct, colSums(counts))
  recall <- ratio(correct, support)
  f1 <- ratio(2 * precision * recall, precision + recall)
  weights <- support / sum(support)
  matrix_out <- stats::setNames(lapply(classes, function(actual) {
    stats::setNames(as.list(as.integer(counts[actual, ])), classes)
  }), classes)
  metrics <- list(accuracy = figure(mean(truth == predicted)),
                  weighted_precision = figure(sum(precision * weights)),
                  weighted_recall = figure(sum(recall * weights)),
                  weighted_f1 = figure(sum(f1 * weights)),
                  confusion_matrix = matrix_out)
  per_class <- stats::setNames(lapply(seq_along(classes), function(i) {
    list(precision = figure(precision[[i]]), recall = figure(recall[[i]]), f1 = figure(f1[[i]]),
         support = as.integer(support[[i]]))
  }), classes)
  if (!is.null(probabilities)) {
    if (!identical(dim(probabilities), c(length(truth), length(classes)))) {
      stop(sprintf("predict_probabilities gave a %s matrix, expected %d x %d: a column per class",
                   paste(dim(probabilities), collapse = " x "), length(truth), length(classes)),
           call. = FALSE)
    }
    areas <- lapply(seq_along(classes), function(i) roc_area(truth == classes[[i]], probabilities[, i]))
    for (i in seq_along(classes)) {
      if (!is.null(areas[[i]])) per_class[[classes[[i]]]]$auc <- figure(areas[[i]])
    }
    if (!any(vapply(areas, is.null, logical(1)))) {
      metrics$auc <- figure(mean(unlist(areas)))
      metrics$weighted_auc <- figure(sum(unlist(areas) * weights))
    }
  }
  metrics$per_class <- per_class
  if (length(classes) != 2) return(list(multiclass_classification_metrics = metrics))
  positive <- classes[[2]]  # the second class, as scikit-learn's pos_label = 1 for labels 0 and 1
  tp <- counts[2, 2]
  fn <- counts[2, 1]
  fp <- counts[1, 2]
  tn <- counts[1, 1]
  binary <- list(positive_label = positive, negative_label = classes[[1]],
                 precision = per_class[[positive]]$precision, recall = per_class[[positive]]$recall,
                 f1 = per_class[[positive]]$f1,
                 true_positive_rate = figure(ratio(tp, tp + fn)),
                 true_negative_rate = figure(ratio(tn, tn + fp)),
                 false_positive_rate = figure(ratio(fp, fp + tn)),
                 false_negative_rate = figure(ratio(fn, fn + tp)))
  metrics$auc <- NULL
  if (!is.null(per_class[[positive]]$auc)) {
    curve <- roc_points(truth == positive, probabilities[, 2])
    binary$auc <- per_class[[positive]]$auc
    binary$receiver_operating_characteristic_curve <- list(false_positive_rates = curve$fpr,
                                                           true_positive_rates = curve$tpr)
  }
  list(binary_classification_metrics = c(metrics, binary))
}

#' The regression report: MSE, RMSE, MAE and R².
regression_metrics <- function(truth, predicted) {
  errors <- predicted - truth
  mse <- mean(errors^2)
  spread <- sum((truth - mean(truth))^2)
  residual <- sum(errors^2)
  r2 <- if (spread > 0) 1 - residual / spread else if (residual == 0) 1 else 0
  list(regression_metrics = list(mse = figure(mse), rmse = figure(sqrt(mse)),
                                 mae = figure(mean(abs(errors))), r2 = figure(r2)))
}

#' One line for /opt/ml/output/message.
evaluation_summary <- function(report, rows) {
  kind <- names(report)[[1]]
  metrics <- report[[1]]
  shown <- if (kind == "regression_metrics") c("mse", "rmse", "mae", "r2") else
    c("accuracy", "weighted_f1", "auc")
  shown <- shown[shown %in% names(metrics)]
  values <- vapply(shown, function(name) sprintf("%s=%.4g", name, metrics[[name]]$value), "")
  sprintf("Evaluated %d rows (%s): %s", rows, kind, paste(values, collapse = " "))
}

#' Base R's PNG device works here (R built with cairo, or an X11 display).
can_plot <- function() isTRUE(capabilities("png"))

#' The confusion matrix as a PNG: counts in each cell, actual classes down, predicted across.
plot_confusion <- function(counts, classes, path) {
  grDevices::png(path, width = 640, height = 560)
  on.exit(grDevices::dev.off())
  n <- length(classes)
  graphics::par(mar = c(6, 8, 4, 2))
  graphics::image(seq_len(n), seq_len(n), t(counts[rev(seq_len(n)), , drop = FALSE]),
                  col = grDevices::hcl.colors(20, "Blues", rev = TRUE), axes = FALSE,
                  xlab = "", ylab = "", main = "Confusion matrix")
  graphics::axis(1, at = seq_len(n), labels = classes, las = 2)
  graphics::axis(2, at = seq_len(n), labels = rev(classes), las = 1)
  graphics::mtext("predicted", side = 1, line = 5)
  graphics::mtext("actual", side = 2, line = 7)
  cells <- expand.grid(row = seq_len(n), column = seq_len(n))
  values <- counts[cbind(cells$row, cells$column)]
  graphics::text(cells$column, n + 1 - cells$row, values,
                 col = ifelse(values > max(counts) / 2, "white", "black"))
}

#' One ROC curve per class, one-vs-rest (the positive class alone for two classes).
plot_roc <- function(truth, probabilities, classes, path) {
  grDevices::png(path, width = 600, height = 500)
  on.exit(grDevices::dev.off())
  graphics::plot(c(0, 1), c(0, 1), type = "l", lty = 2, col = "grey", xlab = "false positive rate",
                 ylab = "true positive rate", main = "ROC curves, one-vs-rest")
  shown <- if (length(classes) == 2) 2L else seq_along(classes)
  legend <- character(0)
  colours <- grDevices::hcl.colors(length(classes), "Dark 3")
  for (i in shown) {
    area <- roc_area(truth == classes[[i]], probabilities[, i])
    if (is.null(area)) next
    curve <- roc_points(truth == classes[[i]], probabilities[, i])
    graphics::lines(curve$fpr, curve$tpr, col = colours[[i]], lwd = 2)
    legend <- c(legend, sprintf("%s (AUC %.3f)", classes[[i]], area))
  }
  if (length(legend) > 0) graphics::legend("bottomright", legend = legend,
                                           col = colours[shown][seq_along(legend)], lwd = 2)
}

#' Predicted against actual values, for a regressor.
plot_regression <- function(truth, predicted, path) {
  grDevices::png(path, width = 500, height = 500)
  on.exit(grDevices::dev.off())
  graphics::plot(truth, predicted, xlab = "actual", ylab = "predicted",
                 main = "Predicted against actual")
  graphics::abline(0, 1, lty = 2, col = "grey")
}
