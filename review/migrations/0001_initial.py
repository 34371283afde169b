# Models moved out of annotate (issue: one app per concern); tables kept as they were.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('annotate', '0004_review_and_queues'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # The tables exist (made by annotate's migrations 0001-0004, under annotate_*): this app
        # takes over the models in Django's state only, and the database is left as it is.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='GoldLabelChange',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('old_value', models.SmallIntegerField(blank=True, null=True)),
                        ('new_value', models.SmallIntegerField(blank=True, null=True)),
                        ('old_source', models.CharField(blank=True, max_length=20)),
                        ('new_source', models.CharField(blank=True, max_length=20)),
                        ('rationale', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('changed_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to=settings.AUTH_USER_MODEL)),
                        ('step', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='gold_changes', to='annotate.step')),
                    ],
                    options={
                        'db_table': 'annotate_goldlabelchange',
                        'ordering': ['-created_at', '-id'],
                    },
                ),
                migrations.CreateModel(
                    name='QueueSettings',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('strategy', models.CharField(choices=[('sequential', 'Sequential (import order)'), ('random', 'Random'), ('uncertainty', 'PRM uncertainty'), ('committee', 'Disagreement between scorers'), ('spread', 'Spread of sampled verdicts'), ('convincing_wrong', 'Convincing wrong answers')], default='sequential', max_length=20)),
                        ('lease_minutes', models.PositiveIntegerField(default=30, help_text='A trace handed out and not submitted within this returns to the queue.')),
                        ('project', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='queue_settings', to='annotate.project')),
                    ],
                    options={
                        'db_table': 'annotate_queuesettings',
                    },
                ),
                migrations.CreateModel(
                    name='Assignment',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('slot', models.SmallIntegerField(blank=True, null=True)),
                        ('status', models.CharField(choices=[('leased', 'Leased'), ('submitted', 'Submitted'), ('skipped', 'Skipped'), ('expired', 'Expired'), ('released', 'Released')], default='leased', max_length=10)),
                        ('leased_at', models.DateTimeField()),
                        ('leased_until', models.DateTimeField()),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('skip_reason', models.CharField(blank=True, choices=[('unclear', 'Problem or steps are unclear'), ('too_hard', 'Beyond my expertise'), ('broken', 'Rendering or data is broken'), ('conflict', 'Conflict of interest / seen before'), ('other', 'Other (see note)')], max_length=20)),
                        ('skip_note', models.TextField(blank=True)),
                        ('annotator', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='assignments', to=settings.AUTH_USER_MODEL)),
                        ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='annotate.project')),
                        ('trace', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='assignments', to='annotate.trace')),
                    ],
                    options={
                        'db_table': 'annotate_assignment',
                        'indexes': [models.Index(fields=['annotator', 'project', 'status'], name='annotate_as_annotat_d94617_idx'), models.Index(fields=['project', 'status', 'leased_until'], name='annotate_as_project_5cef76_idx')],
                        'constraints': [models.UniqueConstraint(fields=('trace', 'annotator'), name='assignment_unique'), models.UniqueConstraint(condition=models.Q(('slot__isnull', False), ('status__in', ['leased', 'submitted'])), fields=('trace', 'slot'), name='assignment_one_holder_per_slot')],
                    },
                ),
                migrations.CreateModel(
                    name='TracePriority',
                    fields=[
                        ('trace', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='priority', serialize=False, to='annotate.trace')),
                        ('priority', models.FloatField(default=0.0)),
                        ('open_slots', models.SmallIntegerField(default=1)),
                        ('uncertainty', models.FloatField(default=0.0)),
                        ('committee', models.FloatField(default=0.0)),
                        ('spread', models.FloatField(default=0.0)),
                        ('convincing_wrong', models.FloatField(default=0.0)),
                        ('random_key', models.FloatField(default=0.0)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='annotate.project')),
                    ],
                    options={
                        'db_table': 'annotate_tracepriority',
                        'indexes': [models.Index(models.F('project'), models.OrderBy(models.F('priority'), descending=True), models.F('trace'), condition=models.Q(('open_slots__gt', 0)), name='tracepriority_next')],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
