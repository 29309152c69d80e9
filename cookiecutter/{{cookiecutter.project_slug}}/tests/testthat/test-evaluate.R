# evaluate: its figures against hand-computed ones, its output files, its failures.

truth <- c("a", "a", "b", "b", "c")
predicted <- c("a", "b", "b", "b", "a")

test_that("the classification figures are the hand-computed ones", {
  report <- classification_metrics(truth, predicted, c("a", "b", "c"))
  found <- report$multiclass_classification_metrics
  expect_equal(found$accuracy$value, 3 / 5)
  # precision a 1/2, b 2/3, c 0; recall a 1/2, b 1, c 0; supports 2, 2, 1
  expect_equal(found$weighted_precision$value, 0.4 * 0.5 + 0.4 * 2 / 3)
  expect_equal(found$weighted_recall$value, 0.6)
  expect_equal(found$weighted_f1$value, 0.4 * 0.5 + 0.4 * 0.8)
  expect_equal(found$per_class$b$f1$value, 0.8)
  expect_equal(found$per_class$c$precision$value, 0)  # never predicted: 0, not NaN
  expect_equal(found$confusion_matrix$a, list(a = 1L, b = 1L, c = 0L))
  expect_equal(found$confusion_matrix$c, list(a = 1L, b = 0L, c = 0L))
  expect_null(found$auc)  # no probabilities, no ROC
})

test_that("the ROC AUC counts a tie as half a pair, one-vs-rest", {
  expect_equal(roc_area(c(TRUE, TRUE, FALSE, FALSE), c(0.9, 0.4, 0.4, 0.1)), 3.5 / 4)
  expect_null(roc_area(c(TRUE, TRUE), c(0.2, 0.3)))
  probabilities <- rbind(c(0.8, 0.1, 0.1), c(0.4, 0.5, 0.1), c(0.1, 0.8, 0.1),
                         c(0.2, 0.5, 0.3), c(0.3, 0.3, 0.4))
  found <- classification_metrics(truth, predicted, c("a", "b", "c"),
                                  probabilities)$multiclass_classification_metrics
  # a: positives 0.8, 0.4 against 0.1, 0.2, 0.3: all 6 pairs won
  expect_equal(found$per_class$a$auc$value, 1)
  # b: positives 0.8, 0.5 against 0.1, 0.5, 0.3: 5 won, 1 tied
  expect_equal(found$per_class$b$auc$value, 5.5 / 6)
  # c: positive 0.4 against 0.1, 0.1, 0.1, 0.3: all won
  expect_equal(found$per_class$c$auc$value, 1)
  expect_equal(found$auc$value, mean(c(1, 5.5 / 6, 1)))
  expect_equal(found$weighted_auc$value, 0.4 + 0.4 * 5.5 / 6 + 0.2)
})

test_that("two classes give the binary metrics of the second class", {
  found <- classification_metrics(c("no", "no", "yes", "yes"), c("no", "yes", "yes", "yes"),
                                  c("no", "yes"), cbind(1 - c(0.1, 0.6, 0.7, 0.9), c(0.1, 0.6, 0.7, 0.9)))
  found <- found$binary_classification_metrics
  expect_equal(found$positive_label, "yes")
  expect_equal(found$precision$value, 2 / 3)
  expect_equal(found$recall$value, 1)
  expect_equal(found$false_positive_rate$value, 0.5)
  expect_equal(found$auc$value, 1)
  expect_equal(found$receiver_operating_characteristic_curve$true_positive_rates[[2]], 0.5)
})

test_that("the regression figures are the hand-computed ones", {
  found <- regression_metrics(c(1, 2, 3, 4), c(1, 2, 3, 5))$regression_metrics
  expect_equal(found$mse$value, 0.25)
  expect_equal(found$rmse$value, 0.5)
  expect_equal(found$mae$value, 0.25)
  expect_equal(found$r2$value, 1 - 1 / 5)
})

#' A trained /opt/ml tree with the model's archive and the test set under processing/.
evaluation_root <- function() {
  root <- new_opt_ml(list(epochs = "50"))
  expect_equal(run_train(root)$status, 0L)
  dir.create(file.path(root, "processing", "model"), recursive = TRUE)
  archive <- file.path(root, "processing", "model", "model.tar.gz")
  here <- setwd(file.path(root, "model"))
  utils::tar(archive, files = "model.rds", compression = "gzip", tar = "internal")
  setwd(here)
  dir.create(file.path(root, "processing", "test"))
  file.copy(file.path(test_set, "iris.csv"), file.path(root, "processing", "test"))
  root
}

test_that("evaluate scores the trained model on the held-out test set", {
  root <- evaluation_root()
  result <- run_evaluate(root)
  expect_equal(result$status, 0L, info = paste(result$output, collapse = "\n"))
  report <- jsonlite::fromJSON(file.path(root, "processing", "evaluation", "evaluation.json"),
                               simplifyVector = FALSE)
  found <- report$multiclass_classification_metrics
  model <- load_model(file.path(root, "model"))
  data <- read_table("test", inputs = list(test = readBin(file.path(test_set, "iris.csv"), "raw",
                                                          n = 1e6)))
  expect_equal(found$accuracy$value, mean(predict_rows(model, data$features) == data$labels))
  expect_gt(found$accuracy$value, 0.8)
  expect_equal(sort(names(found$confusion_matrix)), c("setosa", "versicolor", "virginica"))
  expect_true(found$auc$value > 0.9)
  message <- readLines(file.path(root, "output", "message"))
  expect_match(message, "^Evaluated 30 rows \\(multiclass_classification_metrics\\): accuracy=")
  png_magic <- as.raw(c(0x89, 0x50, 0x4e, 0x47))
  if (can_plot()) {
    for (name in c("confusion_matrix.png", "roc_curve.png")) {
      path <- file.path(root, "processing", "evaluation", name)
      expect_equal(readBin(path, "raw", n = 4), png_magic)
    }
  } else {
    expect_match(found$plots, "^skipped")
  }
})

#' Run evaluate, expecting a failure; return the failure file's first line.
failure_of <- function(root) {
  result <- run_evaluate(root)
  expect_equal(result$status, 1L)
  expect_false(file.exists(file.path(root, "processing", "evaluation", "evaluation.json")))
  reason <- readLines(file.path(root, "output", "failure"))[[1]]
  # the processing job's ExitMessage: where SageMaker Processing shows why it failed
  expect_equal(readLines(file.path(root, "output", "message")), reason)
  reason
}

test_that("evaluate fails with the reason: no archive, no rows, a label never seen", {
  root <- evaluation_root()
  test <- file.path(root, "processing", "test", "iris.csv")
  writeLines(c(readLines(test), "unicorn,5.0,3.0,1.5,0.2"), test)
  expect_equal(failure_of(root), paste("test labels ['unicorn'] are not among the model's classes",
                                       "['setosa', 'versicolor', 'virginica']: the model never saw them"))
  file.remove(file.path(root, "output", "failure"))
  writeLines(character(0), test)
  expect_match(failure_of(root), "channel 'test' has no data rows")
  file.remove(file.path(root, "output", "failure"))
  file.remove(file.path(root, "processing", "model", "model.tar.gz"))
  expect_match(failure_of(root), "^no model archive at ")
})

test_that("evaluate refuses an archive reaching outside its folder", {
  root <- evaluation_root()
  archive <- file.path(root, "processing", "model", "model.tar.gz")
  outside <- file.path(root, "processing", "model", "sub")
  dir.create(outside)
  here <- setwd(outside)
  utils::tar(archive, files = "../../../model/model.rds", compression = "gzip", tar = "internal")
  setwd(here)
  expect_match(failure_of(root), "refusing an archive with absolute or '..' paths")
})
