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
                    name='ExportSnapshot',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.SlugField(max_length=100)),
                        ('version', models.PositiveIntegerField()),
                        ('format', models.CharField(choices=[('trl', 'TRL stepwise supervision (prompt, completions, labels)'), ('prm800k', 'PRM800K (-1 / 0 / +1)'), ('processbench', 'ProcessBench (earliest wrong step)'), ('math_shepherd', 'Math-Shepherd (ки tags, +/-)'), ('pairs', 'Preference pairs at the first error'), ('sft', 'Selected traces as chat messages (distillation)')], max_length=20)),
                        ('file_format', models.CharField(choices=[('jsonl', 'JSON Lines'), ('parquet', 'Parquet')], default='jsonl', max_length=10)),
                        ('labels', models.CharField(choices=[('gold', 'Gold labels (imported or adjudicated)'), ('majority', 'Majority of annotators'), ('all', 'Every annotator (one row each, pseudonymised)')], default='gold', max_length=10)),
                        ('min_agreement', models.FloatField(default=0.0)),
                        ('neutral', models.CharField(blank=True, choices=[('', 'Not set (refuse if there are neutral labels)'), ('positive', 'Neutral counts as correct'), ('negative', 'Neutral counts as wrong'), ('drop', 'Neutral counts as unlabelled')], default='', max_length=10)),
                        ('test_fraction', models.FloatField(default=0.0)),
                        ('seed', models.PositiveIntegerField(default=0)),
                        ('filters', models.JSONField(blank=True, default=dict)),
                        ('options', models.JSONField(blank=True, default=dict)),
                        ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed')], default='queued', max_length=10)),
                        ('progress_done', models.PositiveIntegerField(default=0)),
                        ('progress_total', models.PositiveIntegerField(default=0)),
                        ('row_counts', models.JSONField(blank=True, default=dict)),
                        ('stats', models.JSONField(blank=True, default=dict)),
                        ('files', models.JSONField(blank=True, default=list)),
                        ('sha256', models.CharField(blank=True, max_length=64)),
                        ('card', models.TextField(blank=True)),
                        ('path', models.CharField(blank=True, help_text='Relative to VAR_DIR/exports.', max_length=500)),
                        ('error', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to=settings.AUTH_USER_MODEL)),
                        ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='exports', to='annotate.project')),
                    ],
                    options={
                        'db_table': 'annotate_exportsnapshot',
                        'ordering': ['-created_at', '-id'],
                        'constraints': [models.UniqueConstraint(fields=('project', 'name', 'version'), name='exportsnapshot_unique_version')],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
