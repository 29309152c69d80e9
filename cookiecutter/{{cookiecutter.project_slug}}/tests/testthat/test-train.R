test_that("train fits the sample data, prints metrics per epoch and saves the model", {
  root <- new_opt_ml(list(epochs = "40"))
  run <- run_train(root)
  expect_identical(run$status, 0L)
  expect_true(any(grepl("^epoch=40 training:loss=[0-9.e-]+; training:accuracy=[0-9.]+;$", run$output)))
  model <- load_model(file.path(root, "model"))
  payload <- decode_body(readBin(file.path(test_dir_template, "..", "payload.csv"), "raw", 1e6),
                         csv_type, n_features(model))
  expect_identical(predict_rows(model, payload)[c(1, 6)], c("setosa", "virginica"))
  expect_false(file.exists(file.path(root, "output", "failure")))
})

test_that("a bad hyperparameter fails the job with the reason in output/failure", {
  root <- new_opt_ml(list(epochs = "-1"))
  run <- run_train(root)
  expect_identical(run$status, 1L)
  expect_match(readLines(file.path(root, "output", "failure"))[[1]], "'epochs': must be at least 1")
  expect_length(list.files(file.path(root, "model")), 0)
})

test_that("checkpoints are kept per epoch and a new run resumes from the latest", {
  root <- new_opt_ml(list(epochs = "5"))
  dir.create(file.path(root, "checkpoints"))
  expect_identical(run_train(root)$status, 0L)
  expect_identical(list.files(file.path(root, "checkpoints")),
                   c("algo-1-epoch-000004.rds", "algo-1-epoch-000005.rds"))
  jsonlite::write_json(list(epochs = "7"), file.path(root, "input", "config", "hyperparameters.json"),
                       auto_unbox = TRUE)
  run <- run_train(root)
  expect_true(any(grepl("resuming from checkpoint algo-1-epoch-000005.rds", run$output)))
  expect_identical(sum(grepl("^epoch=", run$output)), 2L)
})
