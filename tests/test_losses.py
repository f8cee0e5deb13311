"""The pure loss functions of SWFP (Eq. 7, 16-20) against closed forms."""

import pytest
import torch as th

from sb3_swfp.common.losses import (
    NonFiniteLossError,
    aggregate_q,
    check_finite,
    ent_coef_loss,
    flow_matching_loss,
    jko_block_loss,
    soft_q_loss,
    soft_q_target,
    w2_cost,
)


def test_soft_q_target_closed_form():
    rewards = th.tensor([[1.0], [2.0]])
    dones = th.tensor([[0.0], [1.0]])
    next_q = th.tensor([[5.0, 3.0], [7.0, 9.0]])
    next_log_prob = th.tensor([-1.0, 0.5])
    y = soft_q_target(rewards=rewards, dones=dones, discounts=0.9, next_q_values=next_q, next_log_prob=next_log_prob, ent_coef=0.2)
    # first: 1 + 0.9 * (min(5, 3) - 0.2 * (-1)) = 1 + 0.9 * 3.2; second: terminal, reward only
    assert th.allclose(y, th.tensor([[1.0 + 0.9 * 3.2], [2.0]]))
    y_mean = soft_q_target(rewards=rewards, dones=dones, discounts=0.9, next_q_values=next_q, next_log_prob=None, ent_coef=0.2, q_agg="mean")
    assert th.allclose(y_mean, th.tensor([[1.0 + 0.9 * 4.0], [2.0]]))
    # per-sample n-step discounts
    y_nstep = soft_q_target(
        rewards=rewards, dones=th.zeros(2, 1), discounts=th.tensor([[0.5], [0.25]]), next_q_values=next_q, next_log_prob=None, ent_coef=0.2
    )
    assert th.allclose(y_nstep, th.tensor([[1.0 + 0.5 * 3.0], [2.0 + 0.25 * 7.0]]))


def test_soft_q_target_carries_no_gradient():
    next_q = th.tensor([[1.0, 2.0]], requires_grad=True)
    assert not soft_q_target(
        rewards=th.zeros(1, 1), dones=th.zeros(1, 1), discounts=0.99, next_q_values=next_q, next_log_prob=None, ent_coef=1.0
    ).requires_grad


def test_soft_q_loss_is_half_sum_of_mse():
    q1, q2, y = th.tensor([[1.0], [3.0]]), th.tensor([[0.0], [0.0]]), th.tensor([[2.0], [2.0]])
    assert soft_q_loss(current_q_values=[q1, q2], target_q_values=y).item() == pytest.approx(0.5 * (1.0 + 4.0))


def test_aggregate_q_rejects_unknown_mode():
    with pytest.raises(ValueError, match="'min', 'mean'"):
        aggregate_q(th.zeros(2, 2), "max")


def test_jko_loss_terms_closed_form():
    q = th.tensor([[2.0], [4.0]])
    log_det = th.tensor([0.1, 0.3])
    x_new = th.tensor([[1.0, 0.0], [0.0, 0.0]])
    x_prev = th.tensor([[0.0, 0.0], [0.0, 1.0]])
    x_old = th.tensor([[1.0, 1.0], [0.0, 0.0]])
    loss, terms = jko_block_loss(
        q_values=q, log_det=log_det, x_new=x_new, x_prev_old=x_prev, x_old=x_old, ent_coef=2.0, w2_coef=0.4, jko_step_size=0.1
    )
    w2_prev, w2_old = (1.0 + 1.0) / 2, (1.0 + 0.0) / 2
    expected = -(3.0 / 2.0) - 0.2 + 0.4 / 0.2 * (w2_prev + w2_old)
    assert loss.item() == pytest.approx(expected)
    assert terms.w2_prev.item() == pytest.approx(w2_prev) and terms.w2_old.item() == pytest.approx(w2_old)
    assert terms.q_term.item() == pytest.approx(-1.5) and terms.log_det.item() == pytest.approx(0.2)


def test_jko_loss_terms_are_detached_and_the_loss_is_not():
    x_new = th.tensor([[1.0, 0.0]], requires_grad=True)
    log_det = th.tensor([0.1], requires_grad=True)
    loss, terms = jko_block_loss(
        q_values=-x_new.sum(-1, keepdim=True), log_det=log_det, x_new=x_new, x_prev_old=th.zeros(1, 2), x_old=th.zeros(1, 2),
        ent_coef=1.0, w2_coef=0.4, jko_step_size=0.1,
    )
    assert loss.requires_grad and not any(term.requires_grad for term in terms)


@pytest.mark.parametrize("q_scale, w2_prev_coef", [(1.0, 1.0), (4.0, 1.0), (1.0, 0.0), (0.5, 0.25)])
def test_jko_step_minimiser_is_the_closed_form_proximal_point(q_scale, w2_prev_coef):
    """With Q(x) = -k ||x - c||^2, the minimiser of Eq. (20) is a weighted mean of c, x_prev and x_old.

    ``q_scale`` divides Q (``q_normalization``) and ``w2_prev_coef`` weighs the ``x_prev`` term.
    """
    k, alpha, eps, tau = 3.0, 2.0, 0.4, 0.1
    c, x_prev, x_old = th.tensor([[1.0, -1.0]]), th.tensor([[0.0, 0.0]]), th.tensor([[0.2, 0.0]])
    x = x_prev.clone().requires_grad_(True)
    optimizer = th.optim.LBFGS([x], max_iter=200)

    def closure():
        optimizer.zero_grad()
        q = -k * (x - c).pow(2).sum(-1, keepdim=True)
        loss, _ = jko_block_loss(
            q_values=q, log_det=th.zeros(1), x_new=x, x_prev_old=x_prev, x_old=x_old, ent_coef=alpha, w2_coef=eps,
            jko_step_size=tau, q_scale=q_scale, w2_prev_coef=w2_prev_coef,
        )
        loss.backward()
        return loss

    optimizer.step(closure)
    a, b = k / (alpha * q_scale), eps / (2 * tau)
    expected = (a * c + b * (w2_prev_coef * x_prev + x_old)) / (a + b * (w2_prev_coef + 1.0))
    assert th.allclose(x.detach(), expected, atol=1e-5)


def test_w2_cost():
    assert th.allclose(w2_cost(th.tensor([[3.0, 4.0]]), th.zeros(1, 2)), th.tensor([25.0]))


def test_ent_coef_loss_gradient_sign():
    log_alpha = th.zeros(1, requires_grad=True)
    # entropy (-log pi = 2) above the target (-1): alpha should go down, so d loss / d log alpha > 0
    ent_coef_loss(log_ent_coef=log_alpha, log_prob=th.tensor([-2.0]), target_entropy=-1.0).backward()
    assert log_alpha.grad.item() > 0


def test_ent_coef_loss_gradient_is_the_entropy_gap_and_leaves_log_pi_alone():
    """d loss / d log alpha = -mean(log pi + H_target): zero exactly where the entropy -log pi meets the target."""
    log_alpha = th.tensor([0.3], requires_grad=True)
    log_prob = th.tensor([-0.5, -2.5], requires_grad=True)
    ent_coef_loss(log_ent_coef=log_alpha, log_prob=log_prob, target_entropy=-1.0).backward()
    assert log_alpha.grad.item() == pytest.approx(-((-0.5 - 1.0) + (-2.5 - 1.0)) / 2)  # 2.5
    assert log_prob.grad is None  # log pi is detached: the temperature loss does not train the actor
    at_target = th.zeros(1, requires_grad=True)
    ent_coef_loss(log_ent_coef=at_target, log_prob=th.tensor([1.0, 3.0]), target_entropy=-2.0).backward()
    assert at_target.grad.item() == 0.0


def test_flow_matching_loss():
    u = th.randn(8, 3)
    assert flow_matching_loss(predicted_velocity=u, target_velocity=u).item() == 0.0
    assert flow_matching_loss(predicted_velocity=u + 1.0, target_velocity=u).item() == pytest.approx(3.0)


def test_check_finite_names_term_and_update():
    assert check_finite("critic_loss", th.tensor(1.5), 3) == 1.5
    with pytest.raises(NonFiniteLossError, match=r"'actor_loss' is nan at gradient update 17"):
        check_finite("actor_loss", th.tensor(float("nan")), 17)
    for value in (float("inf"), -float("inf")):  # an infinite loss is as non-finite as a NaN
        with pytest.raises(NonFiniteLossError, match=r"'critic_loss' is -?inf at gradient update 2"):
            check_finite("critic_loss", th.tensor(value), 2)


def test_q_normalised_jko_gradient_does_not_depend_on_the_reward_scale():
    """With q_scale = mean |Q| (SWFP's q_normalization), scaling Q by c leaves the particle gradient unchanged."""
    x_prev, x_old = th.randn(16, 2), th.randn(16, 2)
    gradients = []
    for scale in (1.0, 250.0):
        x = x_prev.clone().requires_grad_(True)
        q = -scale * (x - 0.3).pow(2).sum(-1, keepdim=True) - scale
        loss, _ = jko_block_loss(
            q_values=q, log_det=th.zeros(16), x_new=x, x_prev_old=x_prev, x_old=x_old, ent_coef=0.01, w2_coef=10.0,
            jko_step_size=0.1, q_scale=q.detach().abs().mean(),
        )
        gradients.append(th.autograd.grad(loss, x)[0])
    assert th.allclose(gradients[0], gradients[1], atol=1e-5)
    # without the normalisation the Q term dominates the W2 trust region 250 times more
    x = x_prev.clone().requires_grad_(True)
    q = -250.0 * (x - 0.3).pow(2).sum(-1, keepdim=True) - 250.0
    loss, _ = jko_block_loss(
        q_values=q, log_det=th.zeros(16), x_new=x, x_prev_old=x_prev, x_old=x_old, ent_coef=0.01, w2_coef=10.0, jko_step_size=0.1
    )
    assert not th.allclose(th.autograd.grad(loss, x)[0], gradients[0], atol=1e-3)
