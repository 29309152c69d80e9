schema <- list(
  epochs = hp_integer(10L, min = 1L),
  rate = hp_double(0.1, min = 0, max = 1),
  shuffle = hp_logical(TRUE),
  solver = hp_choice(c("sgd", "newton"))
)

test_that("defaults fill in what the job does not set", {
  expect_equal(parse_hyperparameters(schema, list()),
               list(epochs = 10L, rate = 0.1, shuffle = TRUE, solver = "sgd"))
})

test_that("string values are typed, JSON-encoded strings too, sagemaker_ keys are ignored", {
  values <- parse_hyperparameters(schema, list(epochs = "3", rate = "0.5", shuffle = "false",
                                               solver = "\"newton\"", sagemaker_region = "\"x\""))
  expect_identical(values$epochs, 3L)
  expect_identical(values$rate, 0.5)
  expect_false(values$shuffle)
  expect_identical(values$solver, "newton")
})

test_that("bad values and unknown names stop, naming each", {
  expect_error(parse_hyperparameters(schema, list(epochs = "ten")), "'epochs': expected an integer")
  expect_error(parse_hyperparameters(schema, list(epochs = "2.5")), "expected an integer")
  expect_error(parse_hyperparameters(schema, list(rate = "2")), "'rate': must be at most 1")
  expect_error(parse_hyperparameters(schema, list(solver = "adam")), "expected one of sgd, newton")
  expect_error(parse_hyperparameters(schema, list(lr = "1", epochs = "0")),
               "'epochs': must be at least 1, got 0; unknown hyperparameter 'lr'")
})

test_that("the model's own schema takes the sample hyperparameters", {
  raw <- jsonlite::fromJSON(file.path(test_dir_template, "input", "config", "hyperparameters.json"),
                            simplifyVector = FALSE)
  expect_type(parse_hyperparameters(hyperparameter_schema, raw)$epochs, "integer")
})
